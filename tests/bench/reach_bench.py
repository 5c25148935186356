"""
Figures of salt-ssh through the jump host on the demo testbed (no assertions):
`salt-ssh '*.demo' test.ping` on fresh nodes (the salt thin is shipped) and warm,
`salt-run cluster.reach demo`, and `cluster.deploy` (validate + reach).

Run as root from the repository root: ``.venv/bin/python tests/bench/reach_bench.py [--runs N]``.
It brings the demo testbed up fresh and takes it down at the end.
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

from tests.saltenv import SaltEnv  # noqa: E402
from tests.testbed import Testbed  # noqa: E402


def timed(call) -> float:
    start = time.monotonic()
    proc = call()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed after {elapsed:.1f} s:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--runs", type=int, default=3, help="warm repetitions of each figure")
    args = parser.parse_args()
    testbed = Testbed("demo", REPO_ROOT)
    testbed.down()
    testbed.up()
    figures: dict[str, float | list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as root:
            env = SaltEnv(root)
            timed(lambda: env.salt_run("cluster.trust", "demo", f"known_hosts={testbed.host_keys_file}"))
            ping = lambda: env.salt_ssh("*.demo", "test.ping")  # noqa: E731
            figures["test.ping 5 nodes, fresh nodes (thin shipped)"] = timed(ping)
            figures["test.ping 5 nodes, warm"] = [timed(ping) for _ in range(args.runs)]
            figures["cluster.reach demo"] = [timed(lambda: env.salt_run("cluster.reach", "demo")) for _ in range(args.runs)]
            figures["cluster.deploy (validate, reach)"] = [timed(lambda: env.deploy("demo")) for _ in range(args.runs)]
            figures["cluster.validate demo"] = [timed(lambda: env.salt_run("cluster.validate", "demo"))
                                                for _ in range(args.runs)]
    finally:
        testbed.down()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'figure':<48} {'median s':>9} {'runs'}")
    for name, value in figures.items():
        values = value if isinstance(value, list) else [value]
        print(f"{name:<48} {statistics.median(values):>9.2f} {' '.join(f'{v:.2f}' for v in values)}")
    print(json.dumps({"bench": "reach", "figures": figures}))


if __name__ == "__main__":
    main()
