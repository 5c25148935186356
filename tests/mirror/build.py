"""Build a local mirror holding every artifact of a bundle manifest, and verify one.

A mirror is a folder laid out as ``brine_manifest.mirror_path()`` says: files at
``<host>/<path of the URL>``, images at ``<registry>/<repo>/<tag>.oci.tar``. Debian
packages, wheels and plain files are downloaded from their upstream URL and checked
against the manifest's sha256. Binaries and images come from :mod:`.recipes` (built
here: stand-ins until the real-Kubernetes lane exists); each binary gets a
``<file>.sha256`` next to it holding its hex sum, as dl.k8s.io publishes.

Cached: what is already there and verifies is kept. Downloads are checked against the
manifest's sums on every run; built artifacts are rebuilt when their recipe key changes
(recorded in ``<mirror>/.brine-mirror/state.json``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import brine_manifest
import brine_oci

from . import built, recipes
from .recipes import RecipeError, sha256_file

DEFAULT_ROOT = Path("/var/cache/brine/mirror")
STATE_DIR = ".brine-mirror"
USER_AGENT = "brine-test-mirror/1"
DOWNLOAD_ATTEMPTS = 3
DOWNLOADED_KINDS = ("deb", "wheel", "file")


class MirrorError(RuntimeError):
    """The mirror could not be built or does not verify; the message lists every problem."""


@dataclass(frozen=True)
class Result:
    """What happened to one artifact."""

    artifact: brine_manifest.Artifact
    path: Path
    size: int
    action: str  # downloaded, built, cached
    what: str
    seconds: float


def default_out(manifest: brine_manifest.Manifest, kubernetes_from: Path | None = None) -> Path:
    """``/var/cache/brine/mirror/<release line>`` with built Kubernetes, ``<line>-standins`` without."""
    return DEFAULT_ROOT / (manifest.release_line if kubernetes_from else f"{manifest.release_line}-standins")


def sha256_sidecar(path: Path) -> Path:
    """``kubeadm.sha256`` next to ``kubeadm``."""
    return path.with_name(path.name + ".sha256")


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def format_result(result: Result) -> str:
    """One line: kind, name, version, size, what happened."""
    artifact = result.artifact
    return (
        f"{artifact.kind:<6} {artifact.name:<42} {artifact.version:<28} {_human(result.size):>10}  "
        f"{result.action:<10} {result.what} ({result.seconds:.1f} s)"
    )


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    with open(out / STATE_DIR / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


class _State:
    """``{mirror path: {recipe, sha256|digest}}`` of what this tool built or downloaded unpinned."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_DIR / "state.json"
        try:
            self.entries: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            self.entries = {}

    def get(self, key: str) -> dict[str, str]:
        return self.entries.get(key, {})

    def set(self, key: str, value: dict[str, str]) -> None:
        self.entries[key] = value

    def save(self) -> None:
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        os.replace(partial, self.path)


# --- downloads --------------------------------------------------------------------------


def fetch(url: str, dest: Path, expected_sha256: str | None) -> str:
    """Download ``url`` to ``dest`` (atomically), checking the sha256 if given; return it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(DOWNLOAD_ATTEMPTS):
        with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as partial:
            try:
                request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
                with urllib.request.urlopen(request, timeout=60) as response:
                    shutil.copyfileobj(response, partial, 1 << 20)
                partial.close()
                actual = sha256_file(Path(partial.name))
                if expected_sha256 is not None and actual != expected_sha256:
                    raise MirrorError(f"{url}: sha256 is {actual}, the manifest says {expected_sha256}")
                os.chmod(partial.name, 0o644)
                os.replace(partial.name, dest)
                return actual
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                last_error = error
                time.sleep(1 + 2 * attempt)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial.name)
    raise MirrorError(f"{url}: download failed after {DOWNLOAD_ATTEMPTS} attempts: {last_error}")


def _download(artifact: brine_manifest.Artifact, path: Path, recorded: str | None) -> tuple[Result, str]:
    """Keep ``path`` if it hashes right, else download it; return the result and its sha256."""
    started = time.monotonic()
    expected = artifact.sha256 or recorded
    if path.is_file() and expected is not None and sha256_file(path) == expected:
        return Result(artifact, path, path.stat().st_size, "cached", "sha256 ok", time.monotonic() - started), expected
    actual = fetch(artifact.url, path, artifact.sha256)
    what = "sha256 ok" if artifact.sha256 else "UNPINNED (not checked)"
    return Result(artifact, path, path.stat().st_size, "downloaded", what, time.monotonic() - started), actual


# --- built artifacts --------------------------------------------------------------------


def _nginx_debs(manifest: brine_manifest.Manifest, out: Path) -> dict[str, Path]:
    """The nginx .debs for the nginx image: the manifest's own, else ``apt-get download``."""
    debs = {a.name: out / brine_manifest.mirror_path(a) for a in manifest.artifacts if a.kind == "deb"}
    found = {name: debs[name] for name in recipes.NGINX_DEBS if name in debs and debs[name].is_file()}
    missing = [name for name in recipes.NGINX_DEBS if name not in found]
    if missing:
        work = out / STATE_DIR / "debs"
        work.mkdir(parents=True, exist_ok=True)
        for name in missing:
            existing = sorted(work.glob(f"{name}_*.deb"))
            if not existing:
                recipes.run(["apt-get", "download", "-q", name], cwd=work)
                existing = sorted(work.glob(f"{name}_*.deb"))
            if not existing:
                raise RecipeError(f"apt-get download {name}: no .deb")
            found[name] = existing[-1]
    return found


def _verify_built(artifact: brine_manifest.Artifact, path: Path, recorded: dict[str, str]) -> list[str]:
    """Problems of a built artifact on disk against what was recorded and what the manifest pins."""
    if not path.is_file():
        return [f"{path}: missing"]
    if artifact.kind == "image":
        problems = brine_oci.verify_archive(str(path))
        if problems:
            return problems
        digest = brine_oci.manifest_digest(str(path), tag=artifact.image_tag)
        if recorded.get("digest") not in (None, digest):
            return [f"{path}: manifest digest {digest}, recorded {recorded['digest']}"]
        return []
    sidecar = sha256_sidecar(path)
    actual = sha256_file(path)
    problems = []
    if not sidecar.is_file() or sidecar.read_text().split()[:1] != [actual]:
        problems.append(f"{sidecar}: missing or not {actual}")
    if recorded.get("sha256") not in (None, actual):
        problems.append(f"{path}: sha256 {actual}, recorded {recorded['sha256']}")
    return problems


def _pin_problem(artifact: brine_manifest.Artifact, path: Path) -> str | None:
    """A pinned sum the locally made artifact does not match (a stand-in never matches upstream)."""
    if artifact.kind == "image" and artifact.digest:
        digest = brine_oci.manifest_digest(str(path), tag=artifact.image_tag)
        if digest != artifact.digest:
            return f"image {artifact.image_reference}: built {digest}, the manifest pins {artifact.digest}"
    if artifact.kind != "image" and artifact.sha256:
        actual = sha256_file(path)
        if actual != artifact.sha256:
            return f"{artifact.kind} {artifact.name}: built {actual}, the manifest pins {artifact.sha256}"
    return None


def _build(artifact: brine_manifest.Artifact, path: Path, recipe: recipes.Recipe, state: _State, key: str) -> Result:
    started = time.monotonic()
    recorded = state.get(key)
    if recorded.get("recipe") == recipe.key and not _verify_built(artifact, path, recorded):
        return Result(artifact, path, path.stat().st_size, "cached", recipe.what, time.monotonic() - started)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.building")
    try:
        digest = recipe.make(partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    if artifact.kind == "image":
        entry = {"recipe": recipe.key, "digest": digest or brine_oci.manifest_digest(str(path), tag=artifact.image_tag)}
    else:
        entry = {"recipe": recipe.key, "sha256": sha256_file(path)}
        sha256_sidecar(path).write_text(entry["sha256"])
    problems = _verify_built(artifact, path, entry)
    if problems:
        raise MirrorError("; ".join(problems))
    state.set(key, entry)
    return Result(artifact, path, path.stat().st_size, "built", recipe.what, time.monotonic() - started)


# --- the mirror -------------------------------------------------------------------------


def build_mirror(
    manifest_path: Path,
    out: Path | None = None,
    *,
    jobs: int = 8,
    kubernetes_from: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[Result]:
    """Make ``out`` hold every artifact of the manifest, verified; log one line per artifact.

    ``kubernetes_from``: the cache ``make k8s-artifacts`` builds into; Kubernetes binaries
    and images then come from there (``tests/mirror/built.py``), else from the stand-ins.

    Raises MirrorError listing every artifact that could not be had (the others are kept).
    """
    manifest = brine_manifest.load_manifest(str(manifest_path))
    out = out or default_out(manifest, kubernetes_from)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: list[Result] = []
    problems: list[str] = []
    with _locked(out):
        state = _State(out)
        downloads = [a for a in manifest.artifacts if a.kind in DOWNLOADED_KINDS]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {}
            for artifact in downloads:
                key = brine_manifest.mirror_path(artifact)
                futures[pool.submit(_download, artifact, out / key, state.get(key).get("sha256"))] = (artifact, key)
            for future in concurrent.futures.as_completed(futures):
                artifact, key = futures[future]
                try:
                    result, actual = future.result()
                except (MirrorError, OSError) as error:
                    problems.append(f"{artifact.kind} {artifact.name} {artifact.version}: {error}")
                    continue
                if artifact.sha256 is None:
                    state.set(key, {"sha256": actual})
                results.append(result)
                log(format_result(result))
        nginx_debs: dict[str, Path] | None = None
        proxy_debs = built.debs_of(manifest, out, built.KUBE_PROXY_DEBS) if kubernetes_from else {}
        for artifact in manifest.artifacts:
            if artifact.kind in DOWNLOADED_KINDS:
                continue
            key = brine_manifest.mirror_path(artifact)
            try:
                recipe = None
                if kubernetes_from and artifact.kind == "binary":
                    recipe = built.built_binary_recipe(artifact, kubernetes_from)
                elif kubernetes_from:
                    recipe = built.built_image_recipe(artifact, kubernetes_from, proxy_debs)
                if recipe is not None:
                    pass
                elif artifact.kind == "binary":
                    recipe = recipes.binary_recipe(artifact)
                else:
                    if nginx_debs is None and recipes.image_name(artifact) == recipes.NGINX_IMAGE:
                        nginx_debs = _nginx_debs(manifest, out)
                    recipe = recipes.image_recipe(artifact, nginx_debs or {})
                if recipe is None:
                    raise RecipeError("no recipe to make it on this machine (tests/mirror/recipes.py)")
                result = _build(artifact, out / key, recipe, state, key)
                pin_problem = _pin_problem(artifact, out / key)
                if pin_problem:
                    problems.append(pin_problem)
            except (RecipeError, MirrorError, OSError, subprocess.SubprocessError) as error:
                problems.append(f"{artifact.kind} {artifact.name} {artifact.version}: {error}")
                continue
            finally:
                state.save()
            results.append(result)
            log(format_result(result))
        state.save()
    elapsed = time.monotonic() - started
    counts = {action: sum(1 for r in results if r.action == action) for action in ("downloaded", "built", "cached")}
    log(
        f"mirror {out}: {len(results)}/{len(manifest.artifacts)} artifacts, {_human(sum(r.size for r in results))} "
        f"({', '.join(f'{n} {action}' for action, n in counts.items())}) in {elapsed:.1f} s"
    )
    if problems:
        raise MirrorError(f"{len(problems)} artifact(s) missing from {out}:\n" + "\n".join(f"- {p}" for p in problems))
    return results


def verify_mirror(manifest: brine_manifest.Manifest, out: Path) -> list[str]:
    """Every problem of a mirror against a manifest; an empty list means every artifact is there and whole.

    Debs, wheels and files: the manifest's sha256 (presence only if unpinned). Binaries: their
    ``.sha256`` file, and the manifest's sum if pinned. Images: every blob, and the manifest's
    digest if pinned.
    """
    problems: list[str] = []
    for artifact in manifest.artifacts:
        path = out / brine_manifest.mirror_path(artifact)
        label = f"{artifact.kind} {artifact.name} {artifact.version}"
        if not path.is_file():
            problems.append(f"{label}: {path} is missing")
            continue
        if artifact.kind == "image":
            problems.extend(f"{label}: {p}" for p in brine_oci.verify_archive(str(path)))
        elif artifact.kind == "binary":
            sidecar = sha256_sidecar(path)
            actual = sha256_file(path)
            if not sidecar.is_file():
                problems.append(f"{label}: {sidecar} is missing")
            elif sidecar.read_text().split()[:1] != [actual]:
                problems.append(f"{label}: {path} hashes to {actual}, {sidecar} says {sidecar.read_text().strip()!r}")
        elif artifact.sha256 and sha256_file(path) != artifact.sha256:
            problems.append(f"{label}: {path} does not hash to the manifest's {artifact.sha256}")
        with contextlib.suppress(brine_oci.OCIArchiveError):
            pin_problem = _pin_problem(artifact, path)
            if pin_problem:
                problems.append(pin_problem)
    return problems
