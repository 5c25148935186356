"""
The offline bundle: build it from a manifest, pin a manifest's unpinned sums,
verify a bundle file. Run where the artifacts can be fetched (upstream, or a
mirror folder or URL), then carry the one bundle file to the deploy node.

CLI Example:

.. code-block:: bash

    salt-run bundle.build release=1.37
    salt-run bundle.build release=1.37 source=/media/usb/mirror output=/tmp/brine-1.37-amd64.tar
    salt-run bundle.pin release=1.37 source=https://mirror.example/brine/
    salt-run bundle.verify /tmp/brine-1.37-amd64.tar
"""

import logging
import os

import brine_bundle
import brine_bundle_layout
import brine_cluster
import brine_manifest

log = logging.getLogger(__name__)

__virtualname__ = "bundle"


def __virtual__():
    return __virtualname__


def _report(lines, ok):
    __context__["retcode"] = 0 if ok else 1
    return {"outputter": "brine_lines", "lines": lines, "retcode": 0 if ok else 1}


def _progress(line):
    print(line, flush=True)  # one line per artifact while it runs, not only at the end


def _release_line(release):
    """"1.20" as given; Salt reads release=1.20 on the command line as the number 1.2."""
    if isinstance(release, float):
        raise brine_manifest.ManifestError(
            f"release={release!r} was read as a number (1.20 becomes 1.2): quote it, release='\"1.20\"'")
    return str(release)


def _manifest_file(release, manifest):
    if manifest:
        return manifest
    return brine_manifest.manifest_path(__opts__["file_roots"]["base"][0], _release_line(release))


def default_output(release):
    """Where bundle.build writes by default: ``.brine/bundles/brine-<line>-amd64.tar``."""
    return os.path.join(brine_cluster.state_root(__opts__), "bundles", f"brine-{release}-amd64.tar")


def build(release, source=None, output=None, pin=False, manifest=None):
    """
    Build the bundle of a release line: fetch every artifact of its manifest
    from ``source`` (a mirror folder or base URL; upstream when omitted),
    verify each against the manifest's sha256 or digest, and pack them with an
    index and an apt repository into one tar. Any missing or mismatching
    artifact is named with the expected and actual sum, and nothing is packed.
    A re-run reuses artifacts already verified.

    release
        The Kubernetes release line, e.g. 1.37 (salt/bundle/manifests/<release>.yaml).
    source
        A mirror folder or http(s) base URL holding ``<host>/<path>`` of each URL.
    output
        The bundle file (default .brine/bundles/brine-<release>-amd64.tar).
    pin
        Take unpinned artifacts' sums from their publisher while building.
    manifest
        Another manifest file instead of the release line's.

    CLI Example:

    .. code-block:: bash

        salt-run bundle.build release=1.37 source=/var/cache/brine/mirror/1.37
    """
    try:
        path = _manifest_file(release, manifest)
        loaded = brine_manifest.load_manifest(path)
        output = output or default_output(release)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        result = brine_bundle.build(loaded, brine_bundle.Source(source), output, pin_unpinned=bool(pin),
                                    progress=_progress)
    except (brine_manifest.ManifestError, brine_bundle.BundleError) as error:
        return _report([*str(error).splitlines(), "bundle not built"], ok=False)
    return _report(result.lines, ok=True)


def pin(release, source=None, manifest=None):
    """
    Fill the unpinned sums of a manifest (binaries: the publisher's
    ``<url>.sha256``; images: the image manifest's digest) and write it back.
    Pinned sums are never changed.

    CLI Example:

    .. code-block:: bash

        salt-run bundle.pin release=1.37 source=/var/cache/brine/mirror/1.37
    """
    try:
        path = _manifest_file(release, manifest)
        loaded = brine_manifest.load_manifest(path)
        lines = brine_bundle.pin(loaded, brine_bundle.Source(source), progress=lambda line: None)
    except (brine_manifest.ManifestError, brine_bundle.BundleError) as error:
        return _report(str(error).splitlines(), ok=False)
    if lines:
        with open(path, encoding="utf-8") as handle:
            header = "".join(line for line in handle if line.startswith("#"))
        brine_manifest.dump_manifest(loaded, path, header)
    return _report(lines or [f"{path}: every artifact is pinned already"], ok=True)


def verify(path):
    """
    Verify a bundle file: every file against its SHA256SUMS and every image
    archive blob by blob. Lists every problem.

    CLI Example:

    .. code-block:: bash

        salt-run bundle.verify .brine/bundles/brine-1.37-amd64.tar
    """
    try:
        index, problems = brine_bundle_layout.verify_file(path)
    except (OSError, ValueError) as error:
        return _report([f"{path}: {error}"], ok=False)
    if problems:
        return _report([*problems, f"{path}: does not verify"], ok=False)
    counts = {}
    for artifact in index["artifacts"]:
        counts[artifact["kind"]] = counts.get(artifact["kind"], 0) + 1
    plural = {"binary": "binaries"}
    kinds = ", ".join(f"{n} {kind if n == 1 else plural.get(kind, kind + 's')}" for kind, n in sorted(counts.items()))
    return _report([f"bundle {index['bundle_id']} ({index['release_line']}, {index['kubernetes_version']}): "
                    f"verified {kinds}"], ok=True)

