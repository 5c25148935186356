"""
The bundle manifest: every artifact a cluster of one Kubernetes release line
needs, with where it comes from and what its bytes must hash to.

One manifest per release line: ``salt/bundle/manifests/<line>.yaml``. Each
artifact names its kind, name, version, architecture, upstream URL and its
sha256 (images: the digest of the image manifest). An artifact with no sum yet
(``sha256: null``) is *unpinned*: ``salt-run bundle.pin`` fills it from the
publisher's own checksum (``<url>.sha256`` for binaries, the image manifest's
digest for images); ``bundle.build`` refuses unpinned artifacts unless told
to pin while building.

Where an artifact lives:

- upstream: its ``url`` (``docker://<registry>/<repo>:<tag>`` for images);
- in a mirror (a folder or an http(s) base URL): ``<host>/<path>`` of the URL,
  images as ``<registry>/<repo>/<tag>.oci.tar`` (an OCI archive);
- in the bundle: :func:`bundle_path`.
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Kind = Literal["binary", "deb", "image", "wheel", "file"]
#: Who needs an artifact: every cluster node, masters, workers, or the deploy node itself.
Consumer = Literal["node", "master", "worker", "deploy"]
SHA256 = r"^[0-9a-f]{64}$"
DIGEST = r"^sha256:[0-9a-f]{64}$"


class Artifact(BaseModel):
    """One file (or image) of the bundle."""

    model_config = ConfigDict(extra="forbid")

    kind: Kind
    name: str = Field(min_length=1, description="binary/package/wheel name, or the image's full name without tag")
    version: str = Field(min_length=1, description="version; for images the tag")
    arch: str = Field("amd64", description="amd64, arm64, or all")
    url: str = Field(description="upstream location; images: docker://<registry>/<repo>:<tag>")
    sha256: str | None = Field(None, pattern=SHA256, description="sha256 of the file's bytes; null = unpinned")
    digest: str | None = Field(None, pattern=DIGEST, description="images: the image manifest's digest")
    consumers: list[Consumer] = Field(default_factory=lambda: ["node"], min_length=1)

    @model_validator(mode="after")
    def _sum_fits_kind(self) -> Artifact:
        if self.kind == "image":
            if self.sha256 is not None:
                raise ValueError(f"image {self.name}: give 'digest', not 'sha256'")
            if not self.url.startswith("docker://"):
                raise ValueError(f"image {self.name}: url must be docker://<registry>/<repo>:<tag>")
        else:
            if self.digest is not None:
                raise ValueError(f"{self.kind} {self.name}: 'digest' is for images; give 'sha256'")
            if urlsplit(self.url).scheme not in ("http", "https"):
                raise ValueError(f"{self.kind} {self.name}: url must be http(s)")
        return self

    @property
    def key(self) -> str:
        """A name unique in a manifest."""
        return f"{self.kind}:{self.name}:{self.version}:{self.arch}"

    @property
    def pinned(self) -> bool:
        return (self.digest if self.kind == "image" else self.sha256) is not None

    @property
    def image_reference(self) -> str:
        """``registry.k8s.io/pause:3.10`` for ``docker://registry.k8s.io/pause:3.10``."""
        return self.url.removeprefix("docker://")

    @property
    def image_registry(self) -> str:
        return self.image_reference.split("/", 1)[0]

    @property
    def image_repository(self) -> str:
        """The repository path without the registry: ``coredns/coredns``."""
        return self.image_reference.split("/", 1)[1].rsplit(":", 1)[0]

    @property
    def image_tag(self) -> str:
        return self.image_reference.rsplit(":", 1)[1]


class Manifest(BaseModel):
    """Every artifact of one Kubernetes release line."""

    model_config = ConfigDict(extra="forbid")

    release_line: str = Field(pattern=r"^\d+\.\d+$")
    kubernetes_version: str = Field(pattern=r"^v\d+\.\d+\.\d+$")
    artifacts: list[Artifact] = Field(min_length=1)

    @model_validator(mode="after")
    def _keys_unique(self) -> Manifest:
        seen: set[str] = set()
        for artifact in self.artifacts:
            if artifact.key in seen:
                raise ValueError(f"artifact {artifact.key} is listed twice")
            seen.add(artifact.key)
        return self

    def for_consumers(self, consumers: set[str]) -> list[Artifact]:
        return [a for a in self.artifacts if consumers & set(a.consumers)]


class ManifestError(ValueError):
    """A manifest that cannot be read, with every reason."""


def manifest_path(state_tree: str, release_line: str) -> str:
    return os.path.join(state_tree, "bundle", "manifests", f"{release_line}.yaml")


def load_manifest(path: str) -> Manifest:
    """Read and check a manifest file; ManifestError lists every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError as error:
        raise ManifestError(f"{path}: no such manifest") from error
    except yaml.YAMLError as error:
        raise ManifestError(f"{path}: not valid YAML: {error}") from error
    try:
        return Manifest.model_validate(data)
    except ValidationError as error:
        lines = [
            f"{path}: {'.'.join(str(p) for p in item['loc']) or '(top)'}: {item['msg']}"
            for item in error.errors(include_url=False)
        ]
        raise ManifestError("\n".join(lines)) from error


def dump_manifest(manifest: Manifest, path: str, header: str = "") -> None:
    """Write a manifest back (after pinning), keeping a header comment."""
    data = manifest.model_dump(mode="json", exclude_defaults=False)
    text = yaml.safe_dump(data, sort_keys=False, width=200)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(header + text)


def mirror_path(artifact: Artifact) -> str:
    """Where an artifact sits in a mirror, relative to the mirror's root."""
    if artifact.kind == "image":
        return f"{artifact.image_registry}/{artifact.image_repository}/{artifact.image_tag}.oci.tar"
    parts = urlsplit(artifact.url)
    return f"{parts.hostname}{unquote(parts.path)}"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+~-]", "_", text)


def bundle_path(artifact: Artifact) -> str:
    """Where an artifact sits in the bundle, relative to its root."""
    if artifact.kind == "image":
        return f"images/{artifact.image_registry}/{artifact.image_repository}/{_safe(artifact.image_tag)}.oci.tar"
    basename = os.path.basename(unquote(urlsplit(artifact.url).path))
    if artifact.kind == "binary":
        return f"binaries/{_safe(artifact.name)}/{_safe(artifact.version)}/{artifact.arch}/{basename}"
    return {"deb": "debs", "wheel": "wheels", "file": "files"}[artifact.kind] + f"/{basename}"
