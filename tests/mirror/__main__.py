"""``python -m tests.mirror build|verify|resolve`` - see ``--help`` of each."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import brine_manifest

from .build import MirrorError, build_mirror, default_out, verify_mirror

REPO_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.mirror", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("build", "make a mirror holding every artifact of a manifest (cached; verified)"),
        ("verify", "check a mirror against a manifest"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--manifest", type=Path, required=True, help="e.g. salt/bundle/manifests/1.37.yaml")
        command.add_argument("--out", type=Path,
                             help="mirror folder (default: /var/cache/brine/mirror/<release line>[-standins])")
        if name == "build":
            command.add_argument("--jobs", type=int, default=8, help="parallel downloads (default: %(default)s)")
            command.add_argument(
                "--kubernetes-from", type=Path, metavar="CACHE",
                help="take Kubernetes binaries and images from what `make k8s-artifacts` built there "
                "(e.g. /var/cache/brine/k8s); without it they are tests/standins stand-ins",
            )  # fmt: skip
    resolve = commands.add_parser("resolve", help="pin a manifest's debs and wheels from a spec (maintainers)")
    resolve.add_argument("--spec", type=Path, required=True, help="e.g. tests/mirror/specs/1.37.yaml")
    resolve.add_argument("--out", type=Path, help="manifest to write (default: salt/bundle/manifests/<line>.yaml)")
    resolve.add_argument("--status", type=Path, help="dpkg status of a minimal node (default: the testbed's)")
    args = parser.parse_args(argv)

    try:
        if args.command == "resolve":
            from .resolve import ResolveError, resolve_to_file

            try:
                path = resolve_to_file(args.spec, args.out, status=args.status, repo=REPO_ROOT)
            except ResolveError as error:
                print(f"error: {error}", file=sys.stderr)
                return 1
            print(f"wrote {path}")
            return 0
        manifest = brine_manifest.load_manifest(str(args.manifest))
        out = args.out or default_out(manifest, getattr(args, "kubernetes_from", None))
        if args.command == "build":
            build_mirror(args.manifest, out, jobs=args.jobs, kubernetes_from=args.kubernetes_from)
            return 0
        started = time.monotonic()
        problems = verify_mirror(manifest, out)
        for problem in problems:
            print(f"- {problem}")
        elapsed = time.monotonic() - started
        print(f"verify {out}: {len(manifest.artifacts)} artifacts, {len(problems)} problem(s) in {elapsed:.1f} s")
        return 1 if problems else 0
    except (brine_manifest.ManifestError, MirrorError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
