"""
A test image for the end-to-end lanes: Debian's busybox-static as
``<registry>/brine-test/toolbox:1`` (sh, nslookup, httpd, nc...; its wget crashes), pushed
into a testbed cluster's private registry from its deploy node. It is the tests'
client inside the cluster, never part of a bundle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

from tests.mirror.oci import ImageConfig, build_image

DROP = Path("/var/cache/brine/bundles/test-images")  # the deploy node's /srv/brine/incoming/test-images
DEB_CACHE = Path("/var/cache/brine/mirror/.test-debs")
REPOSITORY = "brine-test/toolbox:1"
APPLETS = ("sh", "ash", "cat", "echo", "env", "hostname", "httpd", "ip", "ls", "nc", "nslookup", "ping", "sleep",
           "true", "false", "timeout", "mkdir")  # fmt: skip


#: Named by what it holds, so a change of applets builds it anew.
ARCHIVE = DROP / f"toolbox-{hashlib.sha256(' '.join(APPLETS).encode()).hexdigest()[:12]}.oci.tar"


def archive() -> Path:
    """The toolbox OCI archive, built once from busybox-static (apt-get download)."""
    if ARCHIVE.is_file():
        return ARCHIVE
    DEB_CACHE.mkdir(parents=True, exist_ok=True)
    debs = sorted(DEB_CACHE.glob("busybox-static_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", "-q", "busybox-static"], cwd=DEB_CACHE, check=True,
                       capture_output=True)
        debs = sorted(DEB_CACHE.glob("busybox-static_*.deb"))
    with tempfile.TemporaryDirectory(prefix="brine-toolbox-") as work:
        extract, rootfs = Path(work) / "deb", Path(work) / "rootfs"
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(extract)], check=True)
        (rootfs / "bin").mkdir(parents=True)
        (rootfs / "tmp").mkdir(mode=0o1777)
        (rootfs / "www").mkdir()
        (rootfs / "bin/busybox").write_bytes((extract / "bin/busybox").read_bytes())
        (rootfs / "bin/busybox").chmod(0o755)
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        DROP.mkdir(parents=True, exist_ok=True)
        build_image(rootfs, ARCHIVE, "1", ImageConfig(entrypoint=["/bin/sh"]), history="busybox-static (Brine tests)")
    return ARCHIVE


def push(testbed, registry: str, credentials: dict[str, str]) -> str:
    """Push the toolbox into ``registry`` from the deploy node; return its reference."""
    archive()
    auth = json.dumps({"auths": {registry: {"auth": base64.b64encode(
        f"{credentials['username']}:{credentials['password']}".encode()).decode()}}})
    script = (
        "set -e; umask 077; f=$(mktemp); cat >\"$f\"; "
        f"skopeo copy --quiet --authfile \"$f\" --dest-tls-verify=false "
        f"oci-archive:/srv/brine/incoming/test-images/{ARCHIVE.name} docker://{registry}/{REPOSITORY}; rm -f \"$f\""
    )
    testbed.run("deploy", script, check=True, timeout=300, input=auth)
    return f"{registry}/{REPOSITORY}"
