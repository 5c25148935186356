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
