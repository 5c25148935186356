"""
The layout of an unpacked Brine bundle and its verification, with nothing but
the standard library: it runs on the deploy node under salt-ssh as well as on
the machine that builds bundles.

Layout of a bundle (a tar of one folder ``brine-bundle/``)::

    index.json          release, bundle id, every artifact with path, sum, size
    SHA256SUMS          sha256sum -c compatible, every file but itself
    debs/*.deb          + Packages, Packages.gz, Release: an apt repository
    binaries/<name>/<version>/<arch>/<file>
    images/<registry>/<repo>/<tag>.oci.tar      OCI archives
    wheels/*.whl, files/*
    agent/salt-agent-<salt>-cp311-<hash>.tar.gz (+ .sha256): the day-2 agent prebuilt
                        from the wheels and salt's sdist (brine_agent_archive)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from typing import Any

import brine_oci

BUNDLE_ROOT = "brine-bundle"
INDEX = "index.json"
SUMS = "SHA256SUMS"
#: Written into an unpacked bundle once it verified.
VERIFIED = ".verified"
CHUNK = 1 << 20


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_index(root: str) -> dict[str, Any]:
    with open(os.path.join(root, INDEX), encoding="utf-8") as handle:
        return json.load(handle)


def verify_tree(root: str) -> list[str]:
    """
    Check an unpacked bundle: every file against SHA256SUMS and every artifact
    against the index (image archives blob by blob). Returns every problem.
    """
    problems = []
    try:
        with open(os.path.join(root, SUMS), encoding="utf-8") as handle:
            listed = dict(reversed(line.split("  ", 1)) for line in handle.read().splitlines() if line)
        index = read_index(root)
    except (OSError, ValueError) as error:
        return [f"{root}: not an unpacked bundle ({error})"]
    for relative, want in sorted(listed.items()):
        path = os.path.join(root, relative)
        if not os.path.isfile(path):
            problems.append(f"{relative}: missing")
        elif sha256_file(path) != want:
            problems.append(f"{relative}: sha256 mismatch: expected {want}, got {sha256_file(path)}")
    for entry in index["artifacts"]:
        if entry["path"] not in listed:
            problems.append(f"{entry['path']}: in the index but not in {SUMS}")
        elif entry["kind"] == "image" and os.path.isfile(os.path.join(root, entry["path"])):
            path = os.path.join(root, entry["path"])
            broken = brine_oci.verify_archive(path)
            problems += [f"{entry['path']}: {p}" for p in broken]
            if not broken and brine_oci.manifest_digest(path) != entry["sum"]:
                problems.append(f"{entry['path']}: digest differs from the index")
    return problems


def safe_extract(path: str, dest: str) -> None:
    """
    Extract a bundle tar, refusing members that are not plain files or folders
    under ``brine-bundle/`` (Debian 12's Python 3.11.2 has no extraction filters).
    """
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        for member in members:
            name = os.path.normpath(member.name)
            if (name.startswith(("/", "..")) or not (name == BUNDLE_ROOT or name.startswith(BUNDLE_ROOT + "/"))
                    or not (member.isfile() or member.isdir())):
                raise ValueError(f"{path}: refusing member {member.name!r} (not a plain file under {BUNDLE_ROOT}/)")
            member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
        tar.extractall(dest, members=members)


def unpack(path: str, parent: str) -> tuple[str, list[str]]:
    """
    Unpack the bundle tar ``path`` into ``parent/<bundle id>/`` and verify it
    there; return (that folder, problems). A folder that exists and verified
    before (it holds ``.verified``) is reused as it is.
    """
    index = index_of(path)
    target = os.path.join(parent, index["bundle_id"])
    if os.path.exists(os.path.join(target, VERIFIED)):
        return target, []
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".unpack-", dir=parent)
    try:
        safe_extract(path, scratch)
        root = os.path.join(scratch, BUNDLE_ROOT)
        problems = verify_tree(root)
        if problems:
            return target, problems
        with open(os.path.join(root, VERIFIED), "w", encoding="utf-8") as handle:
            handle.write(index["bundle_id"] + "\n")
        if os.path.exists(target):
            shutil.rmtree(target)
        os.rename(root, target)
        return target, []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def verify_file(path: str) -> tuple[dict[str, Any], list[str]]:
    """Unpack a bundle tar into a scratch folder and verify it; return (index, problems)."""
    with tempfile.TemporaryDirectory() as scratch:
        safe_extract(path, scratch)
        root = os.path.join(scratch, BUNDLE_ROOT)
        try:
            index = read_index(root)
        except (OSError, ValueError) as error:
            return {}, [f"{path}: not a Brine bundle ({error})"]
        return index, verify_tree(root)


def read_member(path: str, member: str) -> bytes:
    """One file of a bundle tar, without unpacking the rest."""
    with tarfile.open(path) as tar:
        extracted = tar.extractfile(f"{BUNDLE_ROOT}/{member}")
        if extracted is None:
            raise ValueError(f"{path}: {member} is not a file")
        return extracted.read()


def index_of(path: str) -> dict[str, Any]:
    return json.load(io.BytesIO(read_member(path, INDEX)))
