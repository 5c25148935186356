"""
Kubernetes release lines Brine can deploy, and version parsing.

A release line is supported when Brine knows how to render its kubeadm API and
the offline bundle can carry its binaries and images. v1.20 is the old-API lane
(kubeadm ``v1beta2``); the two newest lines are the pair an upgrade moves between.
"""

from __future__ import annotations

import re

#: Supported ``major.minor`` lines, oldest first.
SUPPORTED_RELEASE_LINES: tuple[str, ...] = ("1.20", "1.36", "1.37")

_VERSION_RE = re.compile(r"^v?(?P<major>\d+)\.(?P<minor>\d+)\.(?P<patch>\d+)$")


def parse_kubernetes_version(value: str) -> tuple[int, int, int] | None:
    """Return ``(major, minor, patch)`` for ``1.37.2`` or ``v1.37.2``, else None."""
    match = _VERSION_RE.match(str(value).strip())
    if not match:
        return None
    return int(match["major"]), int(match["minor"]), int(match["patch"])


def release_line(value: str) -> str | None:
    """Return the ``major.minor`` line of a version string, or None if malformed."""
    parsed = parse_kubernetes_version(value)
    if parsed is None:
        return None
    return f"{parsed[0]}.{parsed[1]}"


def is_supported(value: str) -> bool:
    """True when the version parses and its release line is supported."""
    return release_line(value) in SUPPORTED_RELEASE_LINES


def upgrade_plan(target: str, control_plane: dict[str, str], kubelets: dict[str, str]) -> tuple[list[str], list[str], bool]:
    """
    Decide whether a running cluster can move to ``target`` (the pillar's
    ``env.kubernetes_version``): ``(problems, lines, to_do)``.

    ``control_plane`` maps each master to the version its kube-apiserver runs
    (``{}`` on a cluster not yet initialised); ``kubelets`` maps every node to
    its kubelet's version. Kubernetes supports moving up one minor at a time
    (kubeadm refuses more, and a kubelet may not be newer than its API server):
    a skip of more than one minor, a downgrade, and a cluster left between two
    versions it cannot be moved from are problems. ``to_do`` is False when
    every component already runs ``target`` (nothing to upgrade).
    """
    wanted = parse_kubernetes_version(target)
    if wanted is None:
        return [f"env.kubernetes_version: '{target}' is not a version x.y.z"], [], False
    if not control_plane:
        return [("the cluster has no running control plane: deploy it with "
                 "`salt-run state.orchestrate cluster.deploy` first")], [], False
    problems, lines = [], []
    found = {**{f"{name} (control plane)": v for name, v in control_plane.items()},
             **{f"{name} (kubelet)": v for name, v in kubelets.items()}}
    parsed = {}
    for what, version in sorted(found.items()):
        value = parse_kubernetes_version(version)
        if value is None:
            problems.append(f"{what}: runs '{version}', not a version Brine can read")
        else:
            parsed[what] = value
    if problems:
        return problems, lines, False
    oldest = min(parsed.values())
    newest = max(parsed.values())
    text = _v(target)
    if newest > wanted:
        newer = sorted(what for what, value in parsed.items() if value > wanted)
        problems.append(f"env.kubernetes_version: {text} is older than what {', '.join(newer)} runs "
                        f"(v{'.'.join(map(str, newest))}); Kubernetes cannot be downgraded: set it to "
                        f"v{'.'.join(map(str, newest))} or newer")
    if wanted[0] != oldest[0] or wanted[1] - oldest[1] > 1:
        behind = sorted(what for what, value in parsed.items() if wanted[1] - value[1] > 1 or value[0] != wanted[0])
        step = f"v{oldest[0]}.{oldest[1] + 1}.x"
        problems.append(f"env.kubernetes_version: {text} skips a minor version from v{'.'.join(map(str, oldest))} "
                        f"({', '.join(behind)}); upgrade one minor at a time: first to {step}, then to {text}")
    if problems:
        return problems, lines, False
    lines.append(f"control plane: {', '.join(f'{n} {_v(v)}' for n, v in sorted(control_plane.items()))}")
    lines.append(f"kubelets: {', '.join(f'{n} {_v(v)}' for n, v in sorted(kubelets.items()))}")
    to_do = oldest != wanted
    lines.append(f"upgrade to {text}: " + (f"from v{'.'.join(map(str, oldest))}" if to_do else
                                           "every component already runs it; nothing to upgrade"))
    return problems, lines, to_do


def _v(version: str) -> str:
    """``1.37.2`` or ``v1.37.2`` as ``v1.37.2``."""
    return "v" + str(version).strip().lstrip("v")
