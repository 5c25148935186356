"""
Figures of `cluster.deploy` on the demo testbed (no assertions): every step's
duration and its count of changes, on bare nodes and again on the converged
cluster (which must change nothing).

Run as root from the repository root, after `make bundle`:
``.venv/bin/python tests/bench/deploy_bench.py``. Brings the demo testbed up
fresh and takes it down at the end.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run as a script: import `tests` from the checkout
    sys.path.insert(0, REPO_ROOT)

from tests.saltenv import SaltEnv, changes_of  # noqa: E402
from tests.testbed import Testbed  # noqa: E402


def deploy(env: SaltEnv) -> tuple[float, list[tuple[str, float, bool, int]]]:
    start = time.monotonic()
    proc = env.salt_run("state.orchestrate", "cluster.deploy", 'pillar={"cluster": "demo"}', "--out=json")
    elapsed = time.monotonic() - start
    data = json.loads(proc.stdout)
    steps = next(iter(data["data"].values()))
    rows = sorted(((s["__id__"], s["duration"] / 1000, s["result"], changes_of(s), s["__run_num__"])
                   for s in steps.values()), key=lambda r: r[4])
    return elapsed, [r[:4] for r in rows]


def main() -> None:
    testbed = Testbed("demo", REPO_ROOT)
    testbed.down()
    testbed.up()
    try:
        with tempfile.TemporaryDirectory() as root:
            env = SaltEnv(root)
            env.salt_run("cluster.trust", "demo", f"known_hosts={testbed.host_keys_file}")
            first_total, first = deploy(env)
            second_total, second = deploy(env)
    finally:
        testbed.down()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"{'step':<32} {'bare s':>8} {'chg':>4}  {'again s':>8} {'chg':>4}")
    for (name, d1, ok1, c1), (_, d2, ok2, c2) in zip(first, second, strict=True):
        flag = "" if ok1 and ok2 else "  FAILED"
        print(f"{name:<32} {d1:>8.1f} {c1:>4}  {d2:>8.1f} {c2:>4}{flag}")
    print(f"{'total (salt-run wall time)':<32} {first_total:>8.1f}       {second_total:>8.1f}")
    print(json.dumps({"bench": "deploy", "first": first, "second": second,
                      "totals": [first_total, second_total]}))


if __name__ == "__main__":
    main()
