"""
Building and checking the offline bundle: one tar file holding every artifact
of a manifest (see :mod:`brine_manifest`), verified against its sums, with its
own index.

The bundle's layout and its verification are in :mod:`brine_bundle_layout`.

Sources: upstream (each artifact's URL), a mirror folder, or a mirror base URL
(``http://mirror.example/`` holding ``<host>/<path>``). The same verification
runs whatever the source: a file whose sum differs from the manifest is refused
by name, with the expected and the actual sum.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import brine_agent_archive
import brine_manifest
import brine_oci
from brine_bundle_layout import BUNDLE_ROOT, CHUNK, INDEX, SUMS, sha256_file
from brine_manifest import Artifact, Manifest

FORMAT = 1

Progress = Callable[[str], None]


class BundleError(RuntimeError):
    """A bundle could not be built or does not verify; the message names every artifact at fault."""


@dataclass
class Source:
    """Where artifacts are fetched from: upstream (None), a mirror folder, or a mirror base URL."""

    location: str | None = None

    @property
    def is_upstream(self) -> bool:
        return not self.location

    @property
    def is_folder(self) -> bool:
        return bool(self.location) and not self.location.startswith(("http://", "https://"))

    def describe(self) -> str:
        return "upstream" if self.is_upstream else self.location

    def locate(self, artifact: Artifact, suffix: str = "") -> str:
        """The path or URL of an artifact (plus a suffix such as .sha256) in this source."""
        if self.is_upstream:
            return artifact.url + suffix
        relative = brine_manifest.mirror_path(artifact) + suffix
        if self.is_folder:
            return os.path.join(self.location, relative)
        return self.location.rstrip("/") + "/" + relative


def _mib(size: int) -> str:
    return f"{size / (1 << 20):8.1f} MiB"


def _download(url: str, dest: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "brine-bundle"})
    with urllib.request.urlopen(request, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, CHUNK)


def _read_text(location: str) -> str:
    if location.startswith(("http://", "https://")):
        with urllib.request.urlopen(location, timeout=60) as response:
            return response.read().decode()
    with open(location, encoding="utf-8") as handle:
        return handle.read()


def _fetch(artifact: Artifact, source: Source, dest: str) -> None:
    """Put the artifact's bytes at ``dest`` (not yet verified)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    partial = dest + ".partial"
    location = source.locate(artifact)
    try:
        if artifact.kind == "image" and source.is_upstream:
            # The upstream image, copied without conversion so its manifest digest stays the registry's.
            subprocess.run(
                ["skopeo", "copy", "--quiet", "--preserve-digests", f"docker://{artifact.image_reference}",
                 f"oci-archive:{partial}:{artifact.image_tag}"],
                check=True, capture_output=True, text=True, timeout=1800,
            )
        elif source.is_folder:
            shutil.copyfile(location, partial)
        else:
            _download(location, partial)
    except FileNotFoundError as error:
        raise BundleError(f"{artifact.kind} {artifact.name} {artifact.version}: missing from {source.describe()} "
                          f"(looked for {location})") from error
    except (urllib.error.URLError, OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        raise BundleError(f"{artifact.kind} {artifact.name} {artifact.version}: cannot fetch {location}: "
                          f"{detail.strip()}") from error
    os.replace(partial, dest)


def actual_sum(artifact: Artifact, path: str) -> str:
    """The sum of a fetched artifact as the manifest states it: file sha256, or image manifest digest."""
    if artifact.kind == "image":
        problems = brine_oci.verify_archive(path)
        if problems:
            raise BundleError(f"image {artifact.name}:{artifact.version}: archive is corrupt: {'; '.join(problems)}")
        return brine_oci.manifest_digest(path)
    return sha256_file(path)


def expected_sum(artifact: Artifact) -> str | None:
    return artifact.digest if artifact.kind == "image" else artifact.sha256


def publisher_sum(artifact: Artifact, source: Source) -> str:
    """
    The sum the publisher states for an unpinned artifact: ``<url>.sha256`` for
    files (as dl.k8s.io publishes), the manifest digest for images.
    """
    if artifact.kind == "image":
        if source.is_upstream:
            proc = subprocess.run(["skopeo", "inspect", "--format", "{{.Digest}}", f"docker://{artifact.image_reference}"],
                                  capture_output=True, text=True, timeout=300, check=False)
            if proc.returncode != 0:
                raise BundleError(f"image {artifact.image_reference}: cannot read its digest: {proc.stderr.strip()}")
            return proc.stdout.strip()
        with tempfile.TemporaryDirectory() as scratch:
            path = os.path.join(scratch, "image.oci.tar")
            _fetch(artifact, source, path)
            return actual_sum(artifact, path)
    location = source.locate(artifact, ".sha256")
    try:
        text = _read_text(location)
    except (OSError, urllib.error.URLError) as error:
        raise BundleError(f"{artifact.kind} {artifact.name} {artifact.version}: unpinned, and no published "
                          f"checksum at {location}") from error
    value = text.split()[0].strip().lower() if text.split() else ""
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise BundleError(f"{artifact.kind} {artifact.name}: {location} holds no sha256")
    return value


def pin(manifest: Manifest, source: Source, progress: Progress = print) -> list[str]:
    """Fill every unpinned artifact's sum from its publisher; return one line per pin made."""
    pinned = []
    for artifact in manifest.artifacts:
        if artifact.pinned:
            continue
        if artifact.kind not in ("binary", "image"):
            raise BundleError(f"{artifact.kind} {artifact.name} {artifact.version}: unpinned, and only binaries and "
                              "images can be pinned from a publisher; write its sha256 into the manifest")
        value = publisher_sum(artifact, source)
        if artifact.kind == "image":
            artifact.digest = value
        else:
            artifact.sha256 = value
        line = f"pinned {artifact.kind} {artifact.name} {artifact.version}: {value}"
        pinned.append(line)
        progress(line)
    return pinned


@dataclass
class BuildResult:
    path: str
    bundle_id: str
    size: int
    artifacts: int
    fetched: int
    cached: int
    seconds: float
    lines: list[str] = field(default_factory=list)


def _deb_fields(path: str) -> str:
    proc = subprocess.run(["dpkg-deb", "-f", path], capture_output=True, text=True, check=True)
    return proc.stdout.rstrip("\n")


def write_apt_repository(debs_dir: str, label: str) -> None:
    """
    Make ``debs_dir`` a flat apt repository (``deb [trusted=yes] URL ./``): a
    Packages index with each package's size and sums, and a Release file with
    the sums of the indexes, so apt checks every byte it installs.
    """
    stanzas = []
    for name in sorted(os.listdir(debs_dir)):
        if not name.endswith(".deb"):
            continue
        path = os.path.join(debs_dir, name)
        with open(path, "rb") as handle:
            data = handle.read()
        stanzas.append(
            _deb_fields(path)
            + f"\nFilename: ./{name}\nSize: {len(data)}\nMD5sum: {hashlib.md5(data).hexdigest()}"
            + f"\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
        )
    packages = "\n".join(stanzas).encode()
    indexes = {"Packages": packages, "Packages.gz": gzip.compress(packages, mtime=0)}
    for name, content in indexes.items():
        with open(os.path.join(debs_dir, name), "wb") as handle:
            handle.write(content)
    release = ["Origin: Brine", f"Label: {label}", "Suite: brine", "Codename: brine",
               f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}", "SHA256:"]
    release += [f" {hashlib.sha256(c).hexdigest()} {len(c)} {n}" for n, c in indexes.items()]
    with open(os.path.join(debs_dir, "Release"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(release) + "\n")


def bundle_id(entries: list[dict[str, Any]]) -> str:
    """A short id that changes whenever any artifact's bytes change."""
    canonical = "\n".join(f"{e['path']} {e['sum']}" for e in sorted(entries, key=lambda e: e["path"]))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _write_sums(root: str) -> None:
    lines = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            if relative != SUMS:
                lines.append(f"{sha256_file(path)}  {relative}")
    with open(os.path.join(root, SUMS), "w", encoding="utf-8") as handle:
        handle.write("\n".join(sorted(lines, key=lambda line: line[66:])) + "\n")


def build(manifest: Manifest, source: Source, output: str, pin_unpinned: bool = False,
          progress: Progress = print) -> BuildResult:
    """
    Fetch, verify and pack every artifact of ``manifest`` into the tar ``output``.

    Artifacts already verified in ``<output>.work/`` from an earlier run are
    reused. Every missing or mismatching artifact is reported (all of them, then
    the build fails); nothing is packed unless all verify.
    """
    start = time.monotonic()
    work = output + ".work"
    root = os.path.join(work, BUNDLE_ROOT)
    os.makedirs(root, exist_ok=True)
    unpinned = [a for a in manifest.artifacts if not a.pinned]
    if unpinned and not pin_unpinned:
        names = ", ".join(f"{a.kind} {a.name} {a.version}" for a in unpinned)
        raise BundleError(f"unpinned artifacts (no sha256/digest in the manifest): {names}; pin them with "
                          "salt-run bundle.pin, or build with pin=True to take the publisher's sums")
    if unpinned:
        pin(manifest, source, progress)

    entries, problems = [], []
    fetched = cached = 0
    total = len(manifest.artifacts)
    for number, artifact in enumerate(manifest.artifacts, 1):
        relative = brine_manifest.bundle_path(artifact)
        dest = os.path.join(root, relative)
        want = expected_sum(artifact)
        began = time.monotonic()
        how = "cached"
        try:
            if not (os.path.exists(dest) and actual_sum(artifact, dest) == want):
                _fetch(artifact, source, dest)
                how = "fetched"
            got = actual_sum(artifact, dest)
        except BundleError as error:
            problems.append(str(error))
            progress(f"[{number:>3}/{total}] {artifact.kind:<6} {artifact.name} {artifact.version}: FAILED")
            continue
        if got != want:
            os.unlink(dest)
            problems.append(f"{artifact.kind} {artifact.name} {artifact.version} from {source.describe()}: "
                            f"sha256 mismatch: expected {want}, got {got}")
            progress(f"[{number:>3}/{total}] {artifact.kind:<6} {artifact.name} {artifact.version}: MISMATCH")
            continue
        fetched += how == "fetched"
        cached += how == "cached"
        size = os.path.getsize(dest)
        progress(f"[{number:>3}/{total}] {artifact.kind:<6} {artifact.name} {artifact.version} {_mib(size)}  "
                 f"{how} {time.monotonic() - began:.1f} s")
        entries.append({
            "kind": artifact.kind, "name": artifact.name, "version": artifact.version, "arch": artifact.arch,
            "url": artifact.url, "path": relative, "sum": got, "size": size, "consumers": artifact.consumers,
        })
    if problems:
        raise BundleError("\n".join(problems))
    if brine_agent_archive.carried(manifest):
        entries.append(_agent_entry(manifest, root, os.path.dirname(os.path.abspath(output)), progress))
    else:
        progress("no day-2 agent: the manifest carries no salt sdist and node wheels")

    debs = os.path.join(root, "debs")
    if os.path.isdir(debs):
        write_apt_repository(debs, f"Brine {manifest.release_line}")
    identity = bundle_id(entries)
    index = {
        "format": FORMAT, "release_line": manifest.release_line, "kubernetes_version": manifest.kubernetes_version,
        "bundle_id": identity, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "source": source.describe(), "artifacts": entries,
    }
    with open(os.path.join(root, INDEX), "w", encoding="utf-8") as handle:
        json.dump(index, handle, indent=1, sort_keys=True)
    _write_sums(root)
    partial = output + ".partial"
    with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(root, arcname=BUNDLE_ROOT, filter=_normalise)
    os.replace(partial, output)
    size = os.path.getsize(output)
    seconds = time.monotonic() - start
    summary = (f"bundle {identity}: {len(entries)} artifacts ({fetched} fetched, {cached} reused) "
               f"{_mib(size).strip()} in {seconds:.1f} s -> {output}")
    progress(summary)
    return BuildResult(output, identity, size, len(entries), fetched, cached, seconds, [summary])


def _agent_entry(manifest: Manifest, root: str, cache_parent: str, progress: Progress) -> dict[str, Any]:
    """
    The day-2 agent prebuilt from the verified wheels and sdist (:mod:`brine_agent_archive`),
    shared between the bundles built beside each other through ``<cache_parent>/agent-cache``.
    """
    began = time.monotonic()
    try:
        relative, digest = brine_agent_archive.build(manifest, root, cache=os.path.join(cache_parent, "agent-cache"))
    except (brine_agent_archive.AgentArchiveError, OSError, subprocess.SubprocessError) as error:
        raise BundleError(str(error)) from error
    path = os.path.join(root, relative)
    size = os.path.getsize(path)
    _, sdist = brine_agent_archive.inputs(manifest)
    progress(f"[agent] salt {sdist.version} with the node wheels {_mib(size)}  {time.monotonic() - began:.1f} s")
    return {"kind": "agent", "name": "salt-agent", "version": sdist.version, "arch": "amd64", "url": "",
            "path": relative, "sum": digest, "size": size, "consumers": ["node"]}


def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
