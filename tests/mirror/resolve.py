"""The maintainer tool that pins a bundle manifest's Debian packages and Python wheels.

Input: a spec (``tests/mirror/specs/<line>.yaml``) naming the binaries and images as they
are, the Debian package lists per consumer, and the Python requirements of the nodes'
salt-minion. Output: ``salt/bundle/manifests/<line>.yaml`` with every .deb and wheel an
exact file: URL, version, architecture and sha256.

Debian packages: ``apt-get install --print-uris`` with ``Dir::State::status`` pointing at
the dpkg status of a minimal node (the testbed's root file system), so the closure lists
only what such a node lacks, and the host's package state is never touched. The sums
come from the archive's Packages index (``apt-get download --print-uris``).

Wheels: ``pip install --dry-run --report`` (the venv's pip 23.0 has no ``download
--report``) for the nodes' CPython and glibc, binary only. A requirement published only
as an sdist (salt itself) is resolved on its own, recorded as kind ``file``, and its
``[build-system] requires`` are resolved as wheels with the rest.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import tomllib
import typing
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brine_manifest
import yaml
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip")
CONSUMER_ORDER = list(typing.get_args(brine_manifest.Consumer))
_PRINT_URIS = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+)(?: (?P<hash>\S*))?$")


class ResolveError(RuntimeError):
    """The spec cannot be resolved; the message says why."""


# --- the spec ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BinarySpec(_Strict):
    name: str
    version: str
    url: str
    arch: str = "amd64"
    consumers: list[brine_manifest.Consumer]


class ImageSpec(_Strict):
    reference: str = Field(pattern=r"^[a-z0-9.-]+(:\d+)?/[a-z0-9._/-]+:[A-Za-z0-9._-]+$")
    consumers: list[brine_manifest.Consumer]


class DebGroup(_Strict):
    name: str
    consumers: list[brine_manifest.Consumer]
    packages: list[str] = Field(min_length=1)
    on_top_of: list[str] = Field(default_factory=list, description="groups whose closure this one's excludes")
    limit_mib: float | None = Field(None, description="leave the group out if what it adds is larger")
    why: str = ""


class DebSpec(_Strict):
    install_recommends: bool = False
    groups: list[DebGroup]


class WheelSpec(_Strict):
    requirements: list[str]
    python_version: str = Field(pattern=r"^3\.\d+$")
    glibc: str = Field(pattern=r"^2\.\d+$")
    consumers: list[brine_manifest.Consumer]
    constraints: str | None = None
    sdists: list[str] = Field(default_factory=list)
    exclude: dict[str, str] = Field(default_factory=dict)


class Spec(_Strict):
    release_line: str
    kubernetes_version: str
    binaries: list[BinarySpec]
    images: list[ImageSpec]
    debs: DebSpec
    wheels: WheelSpec


def load_spec(path: Path) -> Spec:
    """Read a spec; ResolveError lists every problem."""
    try:
        return Spec.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError) as error:
        raise ResolveError(f"{path}: {error}") from error
    except ValidationError as error:
        lines = [f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors(include_url=False)]
        raise ResolveError("\n".join(lines)) from error


# --- Debian packages --------------------------------------------------------------------


@dataclass
class Deb:
    """One .deb of a closure."""

    name: str
    version: str
    arch: str
    url: str
    size: int
    sha256: str = ""
    groups: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.name, self.version, self.arch)


def minimal_status(status: Path | None = None) -> Path:
    """The dpkg status of a minimal node: the testbed root file system's (built if missing)."""
    if status is not None:
        if not status.is_file():
            raise ResolveError(f"{status}: no such dpkg status file")
        return status
    from tests.testbed.rootfs import ensure_rootfs

    rootfs, _ = ensure_rootfs(log=lambda line: print(line, file=sys.stderr))
    return rootfs / "var/lib/dpkg/status"


def _apt(argv: Sequence[str], status: Path, archives: Path, recommends: bool) -> str:
    """Run apt-get against another dpkg status, with an empty archive cache and no lock."""
    command = [
        "apt-get", *argv[:1], "--print-uris", "-qq",
        "-o", f"Dir::State::status={status}",
        "-o", f"Dir::Cache::archives={archives}",
        "-o", "Debug::NoLocking=1",
        "-o", f"APT::Install-Recommends={'true' if recommends else 'false'}",
        *argv[1:],
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    if proc.returncode != 0:
        raise ResolveError(f"{' '.join(command)}: exit {proc.returncode}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def _parse_print_uris(output: str) -> list[tuple[str, str, int, str]]:
    """``(url, file name, size, hash field)`` of each line apt printed."""
    found = []
    for line in output.splitlines():
        match = _PRINT_URIS.match(line.strip())
        if match:
            found.append((match["url"], match["file"], int(match["size"]), match["hash"] or ""))
    return found


def _unquoted_url(url: str) -> str:
    """The URL with its path unquoted: apt writes '+' and '~' as %2b and %7e, but both are
    literal in a URL path, and a mirror's file names (``mirror_path``) should be the real ones."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=urllib.parse.unquote(parts.path)))


def apt_closure(packages: Sequence[str], status: Path, recommends: bool = False) -> dict[tuple[str, str, str], Deb]:
    """Every .deb ``apt-get install PACKAGES`` would fetch onto a node whose dpkg status is ``status``."""
    with tempfile.TemporaryDirectory(prefix="brine-apt-") as archives:
        (Path(archives) / "partial").mkdir()
        output = _apt(["install", *packages], status, Path(archives), recommends)
    closure: dict[tuple[str, str, str], Deb] = {}
    for url, filename, size, _ in _parse_print_uris(output):
        stem = urllib.parse.unquote(filename).removesuffix(".deb")
        name, version, arch = stem.split("_")
        deb = Deb(name=name, version=version, arch=arch, url=_unquoted_url(url), size=size)
        closure[deb.key] = deb
    return closure


def apt_sha256(debs: Sequence[Deb], status: Path) -> None:
    """Fill in each .deb's sha256 from the archive's Packages index."""
    with tempfile.TemporaryDirectory(prefix="brine-apt-") as archives:
        output = _apt(["download", *(f"{d.name}:{d.arch}={d.version}" for d in debs)], status, Path(archives), False)
    sums = {}
    for url, _, size, hash_field in _parse_print_uris(output):
        algorithm, _, value = hash_field.partition(":")
        if algorithm.upper() == "SHA256":
            sums[_unquoted_url(url)] = (value, size)
    for deb in debs:
        if deb.url not in sums:
            raise ResolveError(f"apt-get download --print-uris gave no SHA256 for {deb.name} {deb.version} ({deb.url})")
        deb.sha256, size = sums[deb.url]
        if size != deb.size:
            raise ResolveError(f"{deb.name} {deb.version}: size {deb.size} from install, {size} from download")


@dataclass
class GroupResult:
    """A resolved deb group."""

    group: DebGroup
    debs: list[Deb]
    included: bool

    @property
    def size(self) -> int:
        return sum(d.size for d in self.debs)


def resolve_debs(spec: DebSpec, status: Path) -> tuple[list[Deb], list[GroupResult]]:
    """Every .deb of every group (consumers merged), and each group's own part."""
    by_name = {g.name: g for g in spec.groups}
    closures: dict[str, dict[tuple[str, str, str], Deb]] = {}

    def packages_of(group: DebGroup, seen: tuple[str, ...] = ()) -> list[str]:
        if group.name in seen:
            raise ResolveError(f"debs group {group.name}: on_top_of loops through {', '.join(seen)}")
        names = list(group.packages)
        for base in group.on_top_of:
            if base not in by_name:
                raise ResolveError(f"debs group {group.name}: on_top_of {base!r} is not a group ({', '.join(by_name)})")
            names = packages_of(by_name[base], (*seen, group.name)) + names
        return names

    def closure(packages: list[str]) -> dict[tuple[str, str, str], Deb]:
        key = " ".join(sorted(set(packages)))
        if key not in closures:
            closures[key] = apt_closure(sorted(set(packages)), status, spec.install_recommends)
        return closures[key]

    groups: list[GroupResult] = []
    merged: dict[tuple[str, str, str], Deb] = {}
    for group in spec.groups:
        full = closure(packages_of(group))
        base: set[tuple[str, str, str]] = set()
        for name in group.on_top_of:
            base |= set(closure(packages_of(by_name[name])))
        own = [deb for key, deb in sorted(full.items()) if key not in base]
        result = GroupResult(group, own, True)
        if group.limit_mib is not None and result.size > group.limit_mib * 1024 * 1024:
            result.included = False
        groups.append(result)
        if not result.included:
            continue
        for deb in own:
            entry = merged.setdefault(deb.key, Deb(deb.name, deb.version, deb.arch, deb.url, deb.size))
            entry.groups.append(group.name)
    debs = sorted(merged.values(), key=lambda d: d.key)
    apt_sha256(debs, status)
    return debs, groups


# --- wheels -----------------------------------------------------------------------------


@dataclass
class Wheel:
    """A wheel (or an sdist, when ``sdist``) from pip's report."""

    name: str
    version: str
    url: str
    sha256: str
    sdist: bool = False

    @property
    def filename(self) -> str:
        return os.path.basename(urllib.parse.urlsplit(self.url).path)

    @property
    def arch(self) -> str:
        return "all" if self.sdist or self.filename.endswith("-any.whl") else "amd64"


def _pip_env() -> dict[str, str]:
    """pip's environment without find-links or other local indexes: upstream URLs only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in ("PIP_CERT", "PIP_DEFAULT_TIMEOUT")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pip_report(args: Sequence[str]) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="brine-pip-") as work:
        report = Path(work) / "report.json"
        command = [*PIP, "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report), *args]
        proc = subprocess.run(command, capture_output=True, text=True, env=_pip_env(), cwd=work, timeout=1800)
        if proc.returncode != 0:
            raise ResolveError(f"{' '.join(command)}: exit {proc.returncode}:\n{(proc.stderr or proc.stdout).strip()}")
        return json.loads(report.read_text())["install"]


def _wheel(item: dict[str, Any], sdist: bool = False) -> Wheel:
    info = item["download_info"]
    hashes = info.get("archive_info", {}).get("hashes") or {}
    sha256 = hashes.get("sha256") or info.get("archive_info", {}).get("hash", "").removeprefix("sha256=")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise ResolveError(f"{info['url']}: pip's report has no sha256")
    return Wheel(canonicalize_name(item["metadata"]["name"]), item["metadata"]["version"], info["url"], sha256, sdist)


def target_environment(python_version: str) -> dict[str, str]:
    """Marker values of the nodes' interpreter (CPython on x86_64 Linux)."""
    return {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": python_version,
        "python_full_version": f"{python_version}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
        "extra": "",
    }


def _applies(requirement: str, environment: dict[str, str]) -> Requirement | None:
    parsed = Requirement(requirement)
    if parsed.marker is not None and not Marker(str(parsed.marker)).evaluate(environment):
        return None
    parsed.marker = None
    return parsed


def _sdist_build_requires(url: str) -> list[str]:
    """``[build-system] requires`` of an sdist's pyproject.toml."""
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:
            if member.isfile() and member.name.count("/") == 1 and member.name.endswith("/pyproject.toml"):
                handle = archive.extractfile(member)
                assert handle is not None
                return list(tomllib.loads(handle.read().decode()).get("build-system", {}).get("requires", []))
    return ["setuptools>=40.8.0", "wheel"]  # PEP 517's default for an sdist without pyproject.toml


def resolve_wheels(spec: WheelSpec, repo: Path) -> tuple[list[Wheel], list[str]]:
    """The wheels (and sdists) the requirements need on the nodes' Python; and notes on what was done."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" != spec.python_version:
        raise ResolveError(
            f"wheels.python_version is {spec.python_version} but this is Python {sys.version.split()[0]}: pip reads the "
            f"dependencies' markers with the running interpreter; run resolve with Python {spec.python_version}"
        )
    environment = target_environment(spec.python_version)
    excluded = {canonicalize_name(name) for name in spec.exclude}
    sdist_names = {canonicalize_name(name) for name in spec.sdists}
    constraints = ["-c", str(repo / spec.constraints)] if spec.constraints else []
    notes: list[str] = []
    found: list[Wheel] = []
    requirements: list[str] = []
    for text in spec.requirements:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) not in sdist_names:
            requirements.append(text)
            continue
        items = _pip_report(["--no-deps", f"--no-binary={requirement.name}", *constraints, text])
        sdist = _wheel(items[0], sdist=True)
        found.append(sdist)
        build_requires = _sdist_build_requires(sdist.url)
        notes.append(f"{sdist.name} {sdist.version} is published as an sdist only ({sdist.filename}): kind file below;")
        notes.append(f"  its build requirements are among the wheels: {', '.join(build_requires)}")
        for dependency in [*items[0]["metadata"].get("requires_dist", []), *build_requires]:
            parsed = _applies(dependency, environment)
            if parsed is None:
                continue
            if canonicalize_name(parsed.name) in excluded:
                notes.append(f"left out {parsed} (needed by {sdist.name}): {_lookup(spec.exclude, parsed.name)}")
                notes.append("  install salt with pip --no-deps from these files, or pip refuses for want of it")
                continue
            requirements.append(str(parsed))
    minor = int(spec.glibc.split(".")[1])
    platforms = ["manylinux2014_x86_64", *(f"manylinux_2_{m}_x86_64" for m in range(minor, 16, -1)), "any"]
    implementation = spec.python_version.replace(".", "")
    args = ["--only-binary=:all:", f"--python-version={spec.python_version}", "--implementation=cp", f"--abi=cp{implementation}"]
    args += [f"--platform={p}" for p in platforms]
    with tempfile.TemporaryDirectory(prefix="brine-pip-target-") as target:
        args += ["--target", target, *constraints, *sorted(set(requirements))]
        items = _pip_report(args)
    wheels = sorted((_wheel(item) for item in items), key=lambda w: w.name)
    leaked = [w.name for w in wheels if w.name in excluded]
    if leaked:
        raise ResolveError(f"excluded {', '.join(leaked)} came back as dependencies of other wheels")
    return found + wheels, notes


def _lookup(table: dict[str, str], name: str) -> str:
    wanted = canonicalize_name(name)
    return next((value for key, value in table.items() if canonicalize_name(key) == wanted), "")


# --- the manifest -----------------------------------------------------------------------


def _pip_version() -> str:
    return subprocess.run([*PIP, "--version"], capture_output=True, text=True, env=_pip_env()).stdout.split()[1]


def _block(items: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(items, sort_keys=False, width=200, default_flow_style=None) if items else ""


def _comment(text: str) -> list[str]:
    """``text`` as comment lines of at most 100 characters (continuations indented)."""
    indent = len(text) - len(text.lstrip())
    return ["# " + line for line in textwrap.wrap(text, 98, subsequent_indent=" " * (indent + 2), break_on_hyphens=False)]


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f} MiB"


def render_manifest(spec: Spec, debs: list[Deb], groups: list[GroupResult], wheels: list[Wheel], notes: list[str],
                    status: Path) -> str:  # fmt: skip
    """The manifest's text: a header saying how it was made, then the artifacts in commented groups."""
    today = datetime.date.today().isoformat()
    consumers_of = {g.group.name: g.group.consumers for g in groups}
    lines = [
        f"# Brine bundle manifest for Kubernetes {spec.release_line} (schema: _utils/brine_manifest.py).",
        "#",
        f"# Written on {today} by `python -m tests.mirror resolve --spec tests/mirror/specs/{spec.release_line}.yaml`:",
        "# - debs: `apt-get install --print-uris` against Debian bookworm, bookworm-updates and",
        f"#   bookworm-security as of {today}, with Dir::State::status set to the dpkg status of a",
        "#   minimal node, so each group is the dependency closure such a node lacks; no Recommends",
        "#   (install with install_recommends: False); sums from the archive's Packages index.",
        f"#   Minimal node: {status}",
        f"# - wheels: `pip install --dry-run --report` (pip {_pip_version()}) for CPython {spec.wheels.python_version}",
        f"#   on manylinux up to glibc {spec.wheels.glibc}, binary only, constrained by {spec.wheels.constraints or 'nothing'};",
        "#   URLs and sha256 as PyPI serves them.",
        "# - binaries and images: as the spec names them.",
        "#",
        "# `sha256: null` (binaries) and `digest: null` (images) mean UNPINNED: `salt-run bundle.pin`",
        "# pins each from its publisher's own checksum (<url>.sha256 for binaries, the registry's",
        "# manifest digest for images); bundle.build refuses unpinned artifacts unless told to pin.",
        "",
        f"release_line: {json.dumps(spec.release_line)}",
        f"kubernetes_version: {spec.kubernetes_version}",
        "artifacts:",
        "",
        "# --- binaries (unpinned) ---",
    ]
    binaries = [
        {"kind": "binary", "name": b.name, "version": b.version, "arch": b.arch, "url": b.url, "sha256": None,
         "consumers": list(b.consumers)}
        for b in spec.binaries
    ]  # fmt: skip
    lines.append(_block(binaries))
    lines.append("# --- images (unpinned) ---")
    images = []
    for image in spec.images:
        name, tag = image.reference.rsplit(":", 1)
        images.append({"kind": "image", "name": name, "version": tag, "arch": "amd64", "url": f"docker://{image.reference}",
                       "digest": None, "consumers": list(image.consumers)})  # fmt: skip
    lines.append(_block(images))
    for result in groups:
        group = result.group
        head = f"# --- debs: {group.name} ({', '.join(group.consumers)})"
        if group.on_top_of:
            head += f", on top of {', '.join(group.on_top_of)}"
        head += f": {len(result.debs)} packages, {_mib(result.size)} ---"
        lines.append(head)
        lines.extend(_comment(f"for: {', '.join(group.packages)}" + (f" ({group.why})" if group.why else "")))
        if not result.included:
            lines.append(f"# LEFT OUT: {_mib(result.size)} is over the {group.limit_mib:g} MiB limit.")
            lines.append("")
            continue
        own = [d for d in debs if d.groups[0] == group.name]
        shared = [d.name for d in debs if group.name in d.groups[1:]]
        if shared:
            lines.extend(_comment(f"also needed here, listed above: {', '.join(sorted(shared))}"))
        lines.append(_block([
            {"kind": "deb", "name": d.name, "version": d.version, "arch": d.arch, "url": d.url, "sha256": d.sha256,
             "consumers": sorted({c for g in d.groups for c in consumers_of[g]}, key=CONSUMER_ORDER.index)}
            for d in own
        ]))  # fmt: skip
    plain = [w for w in wheels if not w.sdist]
    lines.append(f"# --- wheels: salt-minion on the nodes ({', '.join(spec.wheels.requirements)}): "
                 f"{len(plain)} wheels ---")  # fmt: skip
    for note in notes:
        lines.extend(_comment(note))
    lines.append(_block([
        {"kind": "wheel", "name": w.name, "version": w.version, "arch": w.arch, "url": w.url, "sha256": w.sha256,
         "consumers": list(spec.wheels.consumers)}
        for w in plain
    ]))  # fmt: skip
    sdists = [w for w in wheels if w.sdist]
    if sdists:
        lines.append("# --- sdists (kind file): no wheel is published; bundle.build builds them into the prebuilt agent "
                     "with the wheels above ---")
        lines.append(_block([
            {"kind": "file", "name": w.name, "version": w.version, "arch": w.arch, "url": w.url, "sha256": w.sha256,
             "consumers": list(spec.wheels.consumers)}
            for w in sdists
        ]))  # fmt: skip
    return "\n".join(lines).rstrip("\n") + "\n"


def resolve_to_file(spec_path: Path, out: Path | None = None, *, status: Path | None = None, repo: Path = REPO_ROOT) -> Path:
    """Resolve a spec and write the manifest (checked with ``brine_manifest.load_manifest``)."""
    spec = load_spec(spec_path)
    status = minimal_status(status)
    debs, groups = resolve_debs(spec.debs, status)
    for result in groups:
        state = "included" if result.included else f"LEFT OUT (limit {result.group.limit_mib:g} MiB)"
        print(f"debs {result.group.name}: {len(result.debs)} packages, {_mib(result.size)} {state}", file=sys.stderr)
    wheels, notes = resolve_wheels(spec.wheels, repo)
    print(f"wheels: {sum(not w.sdist for w in wheels)} wheels, {sum(w.sdist for w in wheels)} sdists", file=sys.stderr)
    text = render_manifest(spec, debs, groups, wheels, notes, status)
    try:
        brine_manifest.Manifest.model_validate(yaml.safe_load(text))
    except ValidationError as error:
        raise ResolveError(f"the manifest made from {spec_path} does not validate:\n{error}") from error
    out = out or Path(brine_manifest.manifest_path(str(repo / "salt"), spec.release_line))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".tmp")
    partial.write_text(text)
    os.replace(partial, out)
    brine_manifest.load_manifest(str(out))
    return out
