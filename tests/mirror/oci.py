"""Build OCI image archives (``oci-archive``) from a root file system directory.

Deterministic: the same directory and options give the same bytes, hence the same
manifest digest. The layer tar lists entries sorted by path with mtime 0, owner 0:0 and
no user/group names; gzip runs with mtime 0 and no file name; JSON is written with
sorted keys and no whitespace; the archive's own tar is built the same way.

The result is what ``skopeo copy oci-archive:FILE docker://REGISTRY/REPO:TAG`` takes:
a tar of ``oci-layout``, ``index.json`` (one manifest, annotated with the tag) and
``blobs/sha256/...`` (the image manifest, its config, one gzip layer).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from brine_oci import (
    INDEX_FILE,
    MEDIA_TYPE_OCI_CONFIG,
    MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST,
    OCI_LAYOUT_FILE,
    REF_NAME_ANNOTATION,
    manifest_digest,
)

MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EPOCH = "1970-01-01T00:00:00Z"
_GZIP_LEVEL = 6


@dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an image config (``config`` in the OCI image config)."""

    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    working_dir: str | None = None
    user: str | None = None
    stop_signal: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def as_oci(self) -> dict[str, Any]:
        """The ``config`` object, with only the fields that are set."""
        config: dict[str, Any] = {"Env": list(self.env)}
        if self.entrypoint is not None:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            config["Cmd"] = list(self.cmd)
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.user:
            config["User"] = self.user
        if self.stop_signal:
            config["StopSignal"] = self.stop_signal
        if self.labels:
            config["Labels"] = dict(self.labels)
        return config


@dataclass(frozen=True)
class BuiltImage:
    """What :func:`build_image` made."""

    archive: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digest: str
    layer_diff_id: str
    layer_size: int
    archive_size: int


class _HashingWriter(io.RawIOBase):
    """A write-only stream that hashes and counts what passes through to ``target``."""

    def __init__(self, target: IO[bytes]) -> None:
        super().__init__()
        self.target = target
        self.hasher = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        self.hasher.update(view)
        self.size += len(view)
        self.target.write(view)
        return len(view)


def _canonical_json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.pax_headers = {}
    return info


def _walk_sorted(root: Path) -> list[Path]:
    """Every path under ``root`` (not ``root`` itself), parents first, sorted by path."""
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        base = Path(directory)
        found.extend(base / name for name in dirs)
        found.extend(base / name for name in files)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def write_layer(rootfs: Path, out: IO[bytes]) -> tuple[str, str, int]:
    """Write ``rootfs`` as a deterministic gzip tar layer to ``out``.

    Returns ``(digest, diff_id, size)``: the sha256 of the compressed bytes, of the
    uncompressed tar, and the compressed size. Regular files, directories, symbolic links
    and hard links are kept with their permission bits; owners become 0:0.
    """
    compressed = _HashingWriter(out)
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=_GZIP_LEVEL) as gz:
        uncompressed = _HashingWriter(gz)
        with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk_sorted(rootfs):
                mode = path.lstat().st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                    raise ValueError(f"{path}: only files, directories and symbolic links go in a layer")
                info = _normalised(tar.gettarinfo(str(path), arcname=path.relative_to(rootfs).as_posix()))
                if info.isreg():
                    with open(path, "rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
    return "sha256:" + compressed.hasher.hexdigest(), "sha256:" + uncompressed.hasher.hexdigest(), compressed.size


def image_config(diff_id: str, config: ImageConfig, history: str) -> dict[str, Any]:
    """The OCI image config document for a one-layer linux/amd64 image."""
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": EPOCH,
        "config": config.as_oci(),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": EPOCH, "created_by": history}],
    }


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = _normalised(tarfile.TarInfo(name))
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = _normalised(tarfile.TarInfo(name))
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def build_image(
    rootfs: Path, archive: Path, tag: str, config: ImageConfig, history: str = "brine tests/mirror"
) -> BuiltImage:
    """Build a one-layer OCI archive of ``rootfs`` at ``archive`` (replaced atomically).

    ``tag`` goes in index.json as ``org.opencontainers.image.ref.name``; ``history`` is the
    ``created_by`` of the layer (say what the image is, e.g. that it is a stand-in).
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix=".oci-") as work:
        layer_path = Path(work) / "layer.tar.gz"
        with open(layer_path, "wb") as layer_file:
            layer_digest, diff_id, layer_size = write_layer(rootfs, layer_file)
        config_bytes = _canonical_json(image_config(diff_id, config, history))
        config_digest = _digest(config_bytes)
        manifest_bytes = _canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_OCI_MANIFEST,
                "config": {"mediaType": MEDIA_TYPE_OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                "layers": [{"mediaType": MEDIA_TYPE_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
            }
        )
        manifest_digest = _digest(manifest_bytes)
        index_bytes = _canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_OCI_INDEX,
                "manifests": [
                    {
                        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
                        "digest": manifest_digest,
                        "size": len(manifest_bytes),
                        "platform": {"architecture": "amd64", "os": "linux"},
                        "annotations": {REF_NAME_ANNOTATION: tag},
                    }
                ],
            }
        )
        blobs: dict[str, bytes | Path] = {
            config_digest: config_bytes,
            manifest_digest: manifest_bytes,
            layer_digest: layer_path,
        }
        partial = Path(work) / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, OCI_LAYOUT_FILE, _canonical_json({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(tar, INDEX_FILE, index_bytes)
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            for digest in sorted(blobs):
                name = "blobs/sha256/" + digest.removeprefix("sha256:")
                content = blobs[digest]
                if isinstance(content, bytes):
                    _add_bytes(tar, name, content)
                else:
                    info = _normalised(tarfile.TarInfo(name))
                    info.size = content.stat().st_size
                    info.mode = 0o644
                    with open(content, "rb") as handle:
                        tar.addfile(info, handle)
        os.chmod(partial, 0o644)
        os.replace(partial, archive)
    return BuiltImage(
        archive=archive,
        tag=tag,
        manifest_digest=manifest_digest,
        config_digest=config_digest,
        layer_digest=layer_digest,
        layer_diff_id=diff_id,
        layer_size=layer_size,
        archive_size=archive.stat().st_size,
    )


def read_blob(archive: Path, digest: str) -> bytes:
    """One blob's bytes from an OCI archive."""
    name = "blobs/" + digest.replace(":", "/", 1)
    with tarfile.open(archive, "r") as tar:
        handle = tar.extractfile(name)
        if handle is None:
            raise KeyError(f"{archive}: no blob {digest}")
        return handle.read()


def extract_image(archive: Path, dest: Path, tag: str | None = None) -> dict[str, Any]:
    """Unpack the image's layers into ``dest`` (a root file system); return its image config.

    For tests: runs no whiteout handling, so it suits the one-layer images built here.
    """
    manifest = json.loads(read_blob(archive, manifest_digest(str(archive), tag=tag)))
    dest.mkdir(parents=True, exist_ok=True)
    for layer in manifest["layers"]:
        with tarfile.open(fileobj=io.BytesIO(read_blob(archive, layer["digest"])), mode="r:*") as tar:
            tar.extractall(dest)
    return json.loads(read_blob(archive, manifest["config"]["digest"]))
