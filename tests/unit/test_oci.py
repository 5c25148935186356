"""
OCI image archives: the builder (tests/mirror/oci.py) is deterministic and writes valid
OCI JSON; brine_oci reads the manifest digest and catches every damaged or missing blob.
Fast, no network, no root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import brine_oci
import pytest

from tests.mirror.oci import (
    MEDIA_TYPE_LAYER_GZIP,
    ImageConfig,
    build_image,
    read_blob,
)

CONFIG = ImageConfig(
    entrypoint=["/bin/hello"],
    cmd=["--loud"],
    env=["PATH=/bin", "GREETING=hi"],
    working_dir="/srv",
    user="65535:65535",
)


def make_rootfs(root: Path, mtime: int = 1_700_000_000) -> Path:
    """A tiny tree: a program, a config file, an empty dir, a symlink and a hard link."""
    (root / "bin").mkdir(parents=True)
    (root / "etc" / "hello").mkdir(parents=True)
    (root / "srv").mkdir()
    program = root / "bin" / "hello"
    program.write_bytes(b"#!/bin/sh\necho hello\n")
    program.chmod(0o755)
    (root / "etc" / "hello" / "hello.conf").write_text("loud = yes\n")
    (root / "bin" / "hi").symlink_to("hello")
    os.link(program, root / "bin" / "hello-again")
    for path in [*root.rglob("*"), root]:
        if not path.is_symlink():
            os.utime(path, (mtime, mtime))
    return root


def blob(archive: Path, digest: str) -> dict:
    return json.loads(read_blob(archive, digest))


@pytest.fixture
def image(tmp_path: Path):
    rootfs = make_rootfs(tmp_path / "rootfs")
    return build_image(rootfs, tmp_path / "hello.oci.tar", "1.0", CONFIG)


def test_same_input_gives_the_same_digest_and_bytes(tmp_path: Path):
    first = build_image(make_rootfs(tmp_path / "a", mtime=1_600_000_000), tmp_path / "a.tar", "1.0", CONFIG)
    second = build_image(make_rootfs(tmp_path / "b", mtime=1_700_000_000), tmp_path / "b.tar", "1.0", CONFIG)
    assert first.manifest_digest == second.manifest_digest
    assert first.layer_digest == second.layer_digest
    assert first.archive.read_bytes() == second.archive.read_bytes()


def test_different_content_or_config_gives_another_digest(tmp_path: Path):
    base = build_image(make_rootfs(tmp_path / "a"), tmp_path / "a.tar", "1.0", CONFIG)
    changed_root = make_rootfs(tmp_path / "b")
    (changed_root / "etc" / "hello" / "hello.conf").write_text("loud = no\n")
    changed = build_image(changed_root, tmp_path / "b.tar", "1.0", CONFIG)
    other_config = build_image(make_rootfs(tmp_path / "c"), tmp_path / "c.tar", "1.0", ImageConfig(entrypoint=["/bin/hi"]))
    assert len({base.manifest_digest, changed.manifest_digest, other_config.manifest_digest}) == 3
    assert base.layer_digest == other_config.layer_digest


def test_index_manifest_and_config_are_oci_json(image):
    with tarfile.open(image.archive) as tar:
        names = tar.getnames()
        layout = json.load(tar.extractfile("oci-layout"))
        index = json.load(tar.extractfile("index.json"))
    assert names[:2] == ["oci-layout", "index.json"]
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "1.0"}
    assert entry["digest"] == image.manifest_digest

    manifest_bytes = read_blob(image.archive, image.manifest_digest)
    assert "sha256:" + hashlib.sha256(manifest_bytes).hexdigest() == image.manifest_digest
    assert entry["size"] == len(manifest_bytes)
    manifest = json.loads(manifest_bytes)
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == MEDIA_TYPE_LAYER_GZIP == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert layer["size"] == image.layer_size

    config = blob(image.archive, manifest["config"]["digest"])
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["config"] == {
        "Entrypoint": ["/bin/hello"],
        "Cmd": ["--loud"],
        "Env": ["PATH=/bin", "GREETING=hi"],
        "WorkingDir": "/srv",
        "User": "65535:65535",
    }
    layer_tar = gzip.decompress(read_blob(image.archive, layer["digest"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}


def test_layer_is_normalised(image):
    manifest = blob(image.archive, image.manifest_digest)
    layer = gzip.decompress(read_blob(image.archive, manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert names == [
        "bin", "bin/hello", "bin/hello-again", "bin/hi", "etc", "etc/hello", "etc/hello/hello.conf", "srv",
    ]  # fmt: skip
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    by_name = {m.name: m for m in members}
    assert by_name["bin/hello"].mode == 0o755
    assert by_name["bin/hi"].issym() and by_name["bin/hi"].linkname == "hello"
    assert by_name["bin/hello-again"].islnk() and by_name["bin/hello-again"].linkname == "bin/hello"


def test_manifest_digest_reads_the_index(image):
    assert brine_oci.manifest_digest(str(image.archive)) == image.manifest_digest
    assert brine_oci.manifest_digest(str(image.archive), tag="1.0") == image.manifest_digest
    with pytest.raises(brine_oci.OCIArchiveError, match=r"0 entries tagged '2\.0'"):
        brine_oci.manifest_digest(str(image.archive), tag="2.0")


def test_a_whole_archive_verifies(image):
    assert brine_oci.verify_archive(str(image.archive)) == []


def _flip_byte(archive: Path, member_name: str, offset: int) -> None:
    with tarfile.open(archive) as tar:
        position = tar.getmember(member_name).offset_data + offset
    with open(archive, "r+b") as handle:
        handle.seek(position)
        byte = handle.read(1)
        handle.seek(position)
        handle.write(bytes([byte[0] ^ 0x01]))


@pytest.mark.parametrize("which", ["layer", "config", "manifest"])
def test_a_flipped_byte_in_any_blob_is_caught(image, which):
    manifest = blob(image.archive, image.manifest_digest)
    digest = {
        "layer": manifest["layers"][0]["digest"],
        "config": manifest["config"]["digest"],
        "manifest": image.manifest_digest,
    }[which]
    _flip_byte(image.archive, "blobs/sha256/" + digest.removeprefix("sha256:"), 10)
    problems = brine_oci.verify_archive(str(image.archive))
    assert any(digest.removeprefix("sha256:") in p and "hashes to" in p for p in problems), problems


def _rewrite(archive: Path, drop: str = "", replace: dict[str, bytes] | None = None) -> None:
    """Rewrite the archive without member ``drop`` and with members' contents replaced."""
    replace = replace or {}
    with tarfile.open(archive) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(archive, "w") as tar:
        for member, content in members:
            if member.name == drop:
                continue
            content = replace.get(member.name, content)
            if content is not None:
                member.size = len(content)
            tar.addfile(member, io.BytesIO(content) if content is not None else None)


CASES = [
    # (what is broken, how, expected problem)
    ("missing layer", "drop-layer", "is not in the archive"),
    ("missing oci-layout", "drop-layout", "oci-layout: missing"),
    ("missing index.json", "drop-index", "index.json: missing"),
    ("wrong size in the index", "index-size", "declared"),
]


@pytest.mark.parametrize(("label", "how", "expected"), CASES, ids=[c[0] for c in CASES])
def test_structural_damage_is_caught(image, label, how, expected):
    manifest = blob(image.archive, image.manifest_digest)
    layer_name = "blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")
    if how == "drop-layer":
        _rewrite(image.archive, drop=layer_name)
    elif how == "drop-layout":
        _rewrite(image.archive, drop="oci-layout")
    elif how == "drop-index":
        _rewrite(image.archive, drop="index.json")
    else:
        index = json.loads(read_blob_index(image.archive))
        index["manifests"][0]["size"] += 1
        _rewrite(image.archive, replace={"index.json": json.dumps(index).encode()})
    problems = brine_oci.verify_archive(str(image.archive))
    assert any(expected in p for p in problems), problems


def read_blob_index(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile("index.json").read()


def test_not_an_archive_is_a_problem_not_a_crash(tmp_path: Path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    assert any("not a readable tar archive" in p for p in brine_oci.verify_archive(str(junk)))
    with pytest.raises(brine_oci.OCIArchiveError):
        brine_oci.manifest_digest(str(junk))
