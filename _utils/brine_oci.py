"""
OCI image archives (``oci-archive``): read the manifest digest, verify every blob.

An OCI archive is a tar of an OCI image layout: ``oci-layout``, ``index.json`` and
``blobs/<algorithm>/<hex>``. This is the form images take in a Brine mirror and bundle
(``skopeo copy oci-archive:FILE docker://...`` pushes one to the private registry).

Both functions read the tar in place; nothing is extracted.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from typing import Any

OCI_LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_MEDIA_TYPES = (MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_MANIFEST_LIST)
MANIFEST_MEDIA_TYPES = (MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST)

#: JSON blobs (manifests, indexes, configs) are small; larger blobs are only hashed.
_JSON_BLOB_LIMIT = 4 * 1024 * 1024
_CHUNK = 1024 * 1024


class OCIArchiveError(ValueError):
    """An archive that cannot be read as an OCI image layout."""


def _blob_name(digest: str) -> str:
    algorithm, _, hexsum = digest.partition(":")
    return f"blobs/{algorithm}/{hexsum}"


def _normalise(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def read_index(path: str) -> dict[str, Any]:
    """The archive's ``index.json``, parsed.

    Example::

        brine_oci.read_index("/srv/brine/bundle/images/registry.k8s.io/pause/3.10.2.oci.tar")
    """
    try:
        with tarfile.open(path, "r") as archive:
            for member in archive:
                if _normalise(member.name) == INDEX_FILE and member.isfile():
                    handle = archive.extractfile(member)
                    assert handle is not None  # a regular file always has content
                    return json.loads(handle.read())
    except (OSError, tarfile.TarError) as error:
        raise OCIArchiveError(f"{path}: not a readable tar archive: {error}") from error
    except ValueError as error:
        raise OCIArchiveError(f"{path}: index.json is not valid JSON: {error}") from error
    raise OCIArchiveError(f"{path}: no index.json (not an OCI image layout archive)")


def manifest_digest(path: str, tag: str | None = None) -> str:
    """The digest (``sha256:<hex>``) of the image manifest the archive's index names.

    With ``tag``, the index entry whose ``org.opencontainers.image.ref.name`` is that tag;
    without, the index must hold exactly one entry. The digest is what a registry reports
    for the image after ``skopeo copy`` (the manifest bytes are copied unchanged).

    Example::

        brine_oci.manifest_digest("pause/3.10.2.oci.tar", tag="3.10.2")
    """
    entries = read_index(path).get("manifests") or []
    if tag is not None:
        entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME_ANNOTATION) == tag]
        if len(entries) != 1:
            raise OCIArchiveError(f"{path}: index.json has {len(entries)} entries tagged {tag!r}; expected exactly 1")
    elif len(entries) != 1:
        raise OCIArchiveError(f"{path}: index.json has {len(entries)} entries; give the tag to choose one")
    digest = entries[0].get("digest", "")
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        raise OCIArchiveError(f"{path}: index.json entry has digest {digest!r}; expected sha256:<hex>")
    return digest


def verify_archive(path: str) -> list[str]:
    """Every problem of an OCI archive; an empty list means it is whole.

    Checks that each blob's bytes hash to its name, that ``oci-layout`` and ``index.json``
    are there, and that every descriptor reachable from the index (nested indexes,
    manifests, configs, layers) names a blob that is present with the declared size.

    Example::

        problems = brine_oci.verify_archive("nginx/1.22.1.oci.tar")
    """
    problems: list[str] = []
    blob_sizes: dict[str, int] = {}
    json_blobs: dict[str, bytes] = {}
    layout: bytes | None = None
    index: bytes | None = None
    try:
        with tarfile.open(path, "r") as archive:
            for member in archive:
                name = _normalise(member.name)
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                assert handle is not None
                if name == OCI_LAYOUT_FILE:
                    layout = handle.read()
                elif name == INDEX_FILE:
                    index = handle.read()
                elif name.startswith("blobs/"):
                    parts = name.split("/")
                    if len(parts) != 3 or parts[1] not in hashlib.algorithms_available:
                        problems.append(f"{name}: not blobs/<algorithm>/<hex>")
                        continue
                    hasher = hashlib.new(parts[1])
                    keep = member.size <= _JSON_BLOB_LIMIT
                    kept: list[bytes] = []
                    while chunk := handle.read(_CHUNK):
                        hasher.update(chunk)
                        if keep:
                            kept.append(chunk)
                    digest = f"{parts[1]}:{parts[2]}"
                    if hasher.hexdigest() != parts[2]:
                        problems.append(f"{name}: content hashes to {parts[1]}:{hasher.hexdigest()}, not its name")
                    blob_sizes[digest] = member.size
                    if keep:
                        json_blobs[digest] = b"".join(kept)
    except (OSError, tarfile.TarError) as error:
        return [*problems, f"{path}: not a readable tar archive: {error}"]

    if layout is None:
        problems.append("oci-layout: missing")
    else:
        try:
            version = json.loads(layout).get("imageLayoutVersion")
        except (ValueError, AttributeError):
            version = None
        if version != "1.0.0":
            problems.append(f"oci-layout: imageLayoutVersion is {version!r}; expected '1.0.0'")
    if index is None:
        return [*problems, "index.json: missing"]
    try:
        index_doc = json.loads(index)
    except ValueError as error:
        return [*problems, f"index.json: not valid JSON: {error}"]
    if not index_doc.get("manifests"):
        problems.append("index.json: no manifests")
    _check_descriptors(index_doc, "index.json", blob_sizes, json_blobs, problems)
    return problems


def _check_descriptors(
    document: dict[str, Any], where: str, blob_sizes: dict[str, int], json_blobs: dict[str, bytes], problems: list[str]
) -> None:
    """Check the descriptors an index or manifest lists, recursing into nested documents."""
    descriptors: list[tuple[str, dict[str, Any]]] = []
    for position, entry in enumerate(document.get("manifests") or []):
        descriptors.append((f"{where}: manifests[{position}]", entry))
    if isinstance(document.get("config"), dict):
        descriptors.append((f"{where}: config", document["config"]))
    for position, entry in enumerate(document.get("layers") or []):
        descriptors.append((f"{where}: layers[{position}]", entry))
    for label, descriptor in descriptors:
        digest = descriptor.get("digest")
        if digest not in blob_sizes:
            problems.append(f"{label}: blob {digest} is not in the archive")
            continue
        if descriptor.get("size") != blob_sizes[digest]:
            problems.append(f"{label}: size {descriptor.get('size')} declared, blob {digest} has {blob_sizes[digest]} bytes")
        media_type = descriptor.get("mediaType")
        if media_type in INDEX_MEDIA_TYPES or media_type in MANIFEST_MEDIA_TYPES:
            content = json_blobs.get(digest)
            if content is None:
                problems.append(f"{label}: {media_type} blob {digest} is too large to be a manifest")
                continue
            try:
                nested = json.loads(content)
            except ValueError as error:
                problems.append(f"{label}: blob {digest} is not valid JSON: {error}")
                continue
            _check_descriptors(nested, _blob_name(digest), blob_sizes, json_blobs, problems)
