"""Figures of the testbed on this machine (no assertions): root file system build, up and
down of the 5-node demo and of a generated 15-node cluster, memory of an idle node.

Run as root from anywhere: ``python tests/bench/testbed_bench.py [--runs N] [--idle S]``.
Refuses to run while the demo is up (its ``down`` would take someone's cluster away).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script: import `tests` from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from tests.testbed import Testbed  # noqa: E402
from tests.testbed.rootfs import ensure_rootfs  # noqa: E402
from tests.testbed.spec import CGROUP_DIR, CGROUP_ROOT, state_dir  # noqa: E402
from tests.testbed.system import cgroup_pids, node_cgroups  # noqa: E402

MIB = 1024 * 1024
BIG_CLUSTER = "bench15"


def write_pillar(directory: Path, cluster: str, base: str, masters: int, workers: int) -> Path:
    """A pillar dir (env.sls, inventory.sls) for ``masters`` + ``workers`` nodes on ``<base>.0/24``."""
    env = {
        "env": {
            "name": cluster,
            "networks": {"node": f"{base}.0/24"},
            "bundle": {"url": f"http://{base}.1:8080/"},
            "ssh": {"jump_host": "master1", "user": "root", "private_key": ".brine/testbed/id_ed25519"},
        }
    }
    nodes = [{"name": f"master{i}", "address": f"{base}.{10 + i}", "roles": ["master", "etcd"]} for i in range(1, masters + 1)]
    nodes += [{"name": f"worker{i}", "address": f"{base}.{20 + i}", "roles": ["worker"]} for i in range(1, workers + 1)]
    pillar = directory / cluster
    pillar.mkdir()
    (pillar / "env.sls").write_text(yaml.safe_dump(env, sort_keys=False))
    (pillar / "inventory.sls").write_text(yaml.safe_dump({"inventory": {"nodes": nodes}}, sort_keys=False))
    return pillar


def memory_of(testbed: Testbed, node: str) -> dict[str, float]:
    """The node's memory in MiB: its memory cgroup's usage and RSS, and the PSS of its processes."""
    memory_cgroup = CGROUP_ROOT / "memory" / CGROUP_DIR / testbed.cluster / node
    stat = dict(line.split() for line in (memory_cgroup / "memory.stat").read_text().splitlines())
    pss = 0
    for pid in cgroup_pids(node_cgroups(testbed.cluster, node)):
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        pss += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines() if line.startswith("Pss:"))
    return {
        "usage": int((memory_cgroup / "memory.usage_in_bytes").read_text()) / MIB,
        "rss": int(stat["total_rss"]) / MIB,
        "pss": pss / MIB,
    }


def bench(testbed: Testbed, runs: int, idle: float) -> None:
    """Print up and down times over ``runs`` cycles and the memory of idle nodes."""
    ups, downs, memory = [], [], []
    for run in range(runs):
        started = time.monotonic()
        testbed.up()
        ups.append(time.monotonic() - started)
        if run == runs - 1:
            time.sleep(idle)
            memory = [memory_of(testbed, str(node["name"])) for node in testbed.nodes]
        started = time.monotonic()
        testbed.down()
        downs.append(time.monotonic() - started)
    count = len(testbed.nodes)
    print(
        f"{testbed.cluster} ({count} nodes): up   "
        + " ".join(f"{t:.2f}" for t in ups)
        + f" s (median {statistics.median(ups):.2f})"
    )
    print(
        f"{testbed.cluster} ({count} nodes): down "
        + " ".join(f"{t:.2f}" for t in downs)
        + f" s (median {statistics.median(downs):.2f})"
    )
    for key, what in (("usage", "memory cgroup usage"), ("rss", "memory cgroup rss"), ("pss", "PSS of its processes")):
        values = [node[key] for node in memory]
        print(
            f"{testbed.cluster}: per idle node after {idle:.0f} s, {what}: mean {statistics.mean(values):.1f} MiB "
            f"(min {min(values):.1f}, max {max(values):.1f})"
        )


def main() -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="up/down cycles per cluster (default: %(default)s)")
    parser.add_argument("--idle", type=float, default=10, help="seconds idle before measuring memory (default: %(default)s)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if os.geteuid() != 0:
        print("the testbed needs root", file=sys.stderr)
        return 1
    if state_dir("demo").exists():
        print("the demo testbed is up: take it down first (python -m tests.testbed down demo)", file=sys.stderr)
        return 1

    quiet = Testbed("demo", REPO_ROOT, log=lambda line: None)
    _, build_seconds = ensure_rootfs(log=lambda line: None)
    print(f"rootfs build: {'cached' if build_seconds is None else f'{build_seconds:.1f} s'}")
    bench(quiet, args.runs, args.idle)
    with tempfile.TemporaryDirectory() as directory:
        pillar = write_pillar(Path(directory), BIG_CLUSTER, "10.78.0", masters=3, workers=12)
        bench(Testbed(BIG_CLUSTER, REPO_ROOT, pillar_dir=pillar, log=lambda line: None), args.runs, args.idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
