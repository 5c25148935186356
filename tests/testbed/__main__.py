"""``python -m tests.testbed up|down|status CLUSTER [--repo DIR] [--pillar DIR]`` and ``down-all``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .spec import SpecError, state_dir
from .system import TestbedError
from .testbed import Testbed, down_cluster, known_clusters

DEFAULT_REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.testbed", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("up", "start a cluster (removing leftovers of an earlier run first)"),
        ("down", "stop a cluster and remove all it left on this machine"),
        ("status", "show each node's state"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("cluster")
        command.add_argument("--repo", type=Path, default=DEFAULT_REPO, help="repository root (default: %(default)s)")
        command.add_argument("--pillar", type=Path, help="pillar dir (default: REPO/pillar/clusters/CLUSTER)")
    commands.add_parser("down-all", help="remove every testbed cluster left on this machine")
    args = parser.parse_args(argv)

    started = time.monotonic()
    try:
        if args.command == "down-all":
            clusters = known_clusters()
            for cluster in clusters:
                down_cluster(cluster)
                print(f"cluster {cluster}: down")
            print(f"down-all: {len(clusters)} cluster(s) in {time.monotonic() - started:.1f} s")
            return 0
        if args.command == "down":  # by name: works without the pillar
            removed = down_cluster(args.cluster)
            print(f"cluster {args.cluster}: {'down' if removed else 'was not up'} in {time.monotonic() - started:.1f} s")
            return 0
        testbed = Testbed(args.cluster, args.repo, pillar_dir=args.pillar)
        if args.command == "up":
            testbed.up()
        else:
            for node in testbed.status():
                print(f"{node['name']:<12} {node['address']:<15} pid1={node['pid1'] or '-':<8} {node['state']}")
    except (SpecError, TestbedError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.command == "up" and isinstance(exc, TestbedError):
            print(
                f"what up made stays for a look (logs in {state_dir(args.cluster)}) until "
                f"python -m tests.testbed down {args.cluster}",
                file=sys.stderr,
            )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
