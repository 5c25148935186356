"""
Figures of preflight and OS init on 3 nodes (no assertions): `salt-run
cluster.preflight` on fresh nodes (the salt thin is shipped) and warm, and
`state.apply os_base` on the 3 nodes, first (packages installed from the file
server) and again (converged).

Run as root from the repository root: ``.venv/bin/python tests/bench/preflight_os_bench.py [--runs N]``.
It brings up its own cluster ``preft`` (10.80.0.0/24, 1 master + 2 workers; the
integration test's, so not alongside it) and takes it down at the end. Needs
the 1.37 bundle in /var/cache/brine/bundles (``make bundle``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run as a script: import `tests` from the checkout
    sys.path.insert(0, REPO_ROOT)

from tests.clusters import TestCluster  # noqa: E402
from tests.saltenv import SaltEnv  # noqa: E402

NAME = "preft"
NODES = ",".join(f"{node}.{NAME}" for node in ("master1", "worker1", "worker2"))


def timed(call) -> float:
    start = time.monotonic()
    proc = call()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed after {elapsed:.1f} s:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=3, help="warm repetitions of each figure")
    args = parser.parse_args()
    figures: dict[str, float | list[float]] = {}
    with tempfile.TemporaryDirectory() as root:
        env = SaltEnv(root)
        cluster = TestCluster(env, NAME, third_octet=80, masters=1, workers=2)
        cluster.down()
        try:
            cluster.up()
            timed(lambda: env.salt_run("cluster.secrets", NAME))
            preflight = lambda: env.salt_run("cluster.preflight", NAME)  # noqa: E731
            figures["cluster.preflight, fresh nodes (thin shipped)"] = timed(preflight)
            figures["cluster.preflight, warm"] = [timed(preflight) for _ in range(args.runs)]
            timed(lambda: env.salt_ssh(f"deploy.{NAME}", "state.apply", "bundle_server"))
            apply = lambda: env.salt_ssh("-L", NODES, "state.apply", "os_base")  # noqa: E731
            figures["state.apply os_base, first (packages installed)"] = timed(apply)
            figures["state.apply os_base, converged"] = [timed(apply) for _ in range(args.runs)]
        finally:
            cluster.down()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'figure (3 nodes)':<52} {'median s':>9} {'runs'}")
    for name, value in figures.items():
        values = value if isinstance(value, list) else [value]
        print(f"{name:<52} {statistics.median(values):>9.2f} {' '.join(f'{v:.2f}' for v in values)}")
    print(json.dumps({"bench": "preflight_os", "figures": figures}))


if __name__ == "__main__":
    main()
