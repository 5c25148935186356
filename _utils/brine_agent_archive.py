"""
The day-2 agent shipped prebuilt: one archive of the nodes' Python environment
(salt and every node wheel of a release line's manifest; no pip), built once by
``bundle.build`` and unpacked on every node, so no node runs pip, builds
salt's sdist or needs a compiler.

The archive is a virtual environment of the nodes' own interpreter
(``/usr/bin/python3``, CPython 3.11 on Debian 12) made relocatable:

- ``bin/python`` links to ``/usr/bin/python3``, and ``pyvenv.cfg`` names
  ``/usr/bin`` only, so the environment works from any folder it is unpacked in;
- every script in ``bin/`` starts through ``/bin/sh`` and runs the ``python``
  beside it (pip's own trick for long shebangs), instead of naming the build
  folder;
- everything is byte-compiled with unchecked hashes (no mtime to go stale),
  with tracebacks naming the path nodes install it at (``/opt/brine/salt``).

Its name carries a hash of its inputs - the sha256 of every node wheel and of
salt's sdist, as the manifest pins them - so the day-2 states compute the same
name from the same manifest (``salt/day2/map.jinja``) and a new wheel set is a
new archive. Its sha256 is written beside it (``<name>.sha256``) and in the
bundle's index and SHA256SUMS.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile

from brine_bundle_layout import sha256_file
from brine_manifest import Artifact, Manifest

#: The interpreter of every node (Debian 12): the archive links to it.
NODE_PYTHON = "/usr/bin/python3"
NODE_PYTHON_VERSION = "3.11"
#: Where the day-2 states unpack it (salt/day2/defaults.yaml): tracebacks name it.
INSTALL_PATH = "/opt/brine/salt"
FOLDER = "agent"
#: How the archive is made: a new recipe (not a new wheel set, which is a new name) builds anew.
RECIPE = 2
#: Every member of the archive gets this mtime, so equal files give an equal archive.
EPOCH = 1_700_000_000

# Runs the script through the python beside it; in Python the second line is a string.
TRAMPOLINE = ("#!/bin/sh\n"
              "'''exec' \"$(dirname -- \"$(readlink -f -- \"$0\")\")/python\" \"$0\" \"$@\"\n"
              "' '''\n")


class AgentArchiveError(RuntimeError):
    """The agent archive could not be built; the message says which step and why."""


def carried(manifest: Manifest) -> bool:
    """Whether a manifest carries what the agent is built from (a bundle without it has no day-2 agent)."""
    return any(a.kind == "file" and a.name == "salt" for a in manifest.artifacts)


def inputs(manifest: Manifest) -> tuple[list[Artifact], Artifact]:
    """The node wheels and salt's sdist of a manifest: what the archive is built from."""
    wheels = [a for a in manifest.artifacts if a.kind == "wheel" and "node" in a.consumers]
    sdists = [a for a in manifest.artifacts if a.kind == "file" and a.name == "salt"]
    if not wheels or not sdists:
        raise AgentArchiveError(f"manifest {manifest.release_line}: the agent needs the node wheels and salt's "
                                "sdist (kind file, name salt); the manifest lacks "
                                + ("both" if not (wheels or sdists) else "the wheels" if not wheels else "the sdist"))
    return wheels, sdists[0]


def inputs_hash(manifest: Manifest) -> str:
    """
    sha256 of the sorted sums of the node wheels, a newline, then the sdist's sum.
    salt/day2/map.jinja computes the same from the same manifest.
    """
    wheels, sdist = inputs(manifest)
    text = "\n".join(sorted(w.sha256 or "" for w in wheels)) + "\n" + (sdist.sha256 or "")
    return hashlib.sha256(text.encode()).hexdigest()


def archive_name(manifest: Manifest) -> str:
    """``salt-agent-<salt version>-cp311-<inputs hash, 16>.tar.gz``."""
    _, sdist = inputs(manifest)
    return f"salt-agent-{sdist.version}-cp{NODE_PYTHON_VERSION.replace('.', '')}-{inputs_hash(manifest)[:16]}.tar.gz"


def _run(step: str, command: list[str], timeout: int = 900) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    if proc.returncode != 0:
        raise AgentArchiveError(f"agent archive: {step} failed (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-2000:]}")


def _check_python(python: str) -> None:
    try:
        proc = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True, timeout=60, check=False)
    except OSError as error:
        raise AgentArchiveError(f"agent archive: no {python} on this machine ({error}); the agent is built with "
                                f"the nodes' interpreter, CPython {NODE_PYTHON_VERSION} (Debian 12's python3)") from error
    version = proc.stdout.strip()
    if version != NODE_PYTHON_VERSION:
        raise AgentArchiveError(f"agent archive: {python} is Python {version or '?'}, the nodes run "
                                f"{NODE_PYTHON_VERSION}: build bundles on Debian 12 (or in Brine's deploy image)")


def _make_relocatable(venv: str) -> None:
    bin_dir = os.path.join(venv, "bin")
    own_python = os.path.join(bin_dir, "python").encode()
    for name in sorted(os.listdir(bin_dir)):
        path = os.path.join(bin_dir, name)
        if name.startswith("activate") or name == "Activate.ps1":
            os.unlink(path)  # they name the build folder; nodes never activate
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as handle:
            first, _, rest = handle.read().partition(b"\n")
        if first.startswith(b"#!") and own_python in first:
            with open(path, "wb") as handle:
                handle.write(TRAMPOLINE.encode() + rest)
    config = os.path.join(venv, "pyvenv.cfg")
    with open(config, encoding="utf-8") as handle:
        kept = [line for line in handle if not line.startswith("command")]  # the build folder's venv command
    with open(config, "w", encoding="utf-8") as handle:
        handle.writelines(kept)
    for folder, _, files in os.walk(venv):
        for name in files:
            if name == "direct_url.json":  # pip's note of the sdist's build path
                os.unlink(os.path.join(folder, name))


def _pack(venv: str, dest: str) -> None:
    """A gzip'd tar of the venv's contents, members sorted, owner root, mtimes fixed: same files, same bytes."""
    partial = dest + ".partial"
    with open(partial, "wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as packed, \
            tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = []
        for folder, dirs, files in os.walk(venv):
            dirs.sort()
            paths += [os.path.join(folder, n) for n in sorted(dirs + files)]
        for path in sorted(paths, key=lambda p: os.path.relpath(p, venv)):
            info = tar.gettarinfo(path, arcname=os.path.relpath(path, venv))
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = EPOCH
            info.pax_headers = {}
            if info.isfile():
                with open(path, "rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
    os.replace(partial, dest)


def _build_into(manifest: Manifest, bundle_root: str, python: str, dest: str) -> None:
    """Make the archive at ``dest``: the venv, the wheels, salt from its sdist, relocatable, compiled, packed."""
    _check_python(python)
    wheels, sdist = inputs(manifest)
    with tempfile.TemporaryDirectory(prefix="brine-agent-") as scratch:
        venv = os.path.join(scratch, "venv")
        venv_python = os.path.join(venv, "bin", "python")
        _run("creating the virtual environment", [python, "-m", "venv", venv])
        pip = [venv_python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--require-hashes", "--no-compile"]
        wanted = os.path.join(scratch, "wheels.txt")
        with open(wanted, "w", encoding="utf-8") as handle:
            handle.writelines(f"{w.name}=={w.version} --hash=sha256:{w.sha256}\n" for w in wheels)
        _run("installing the node wheels", [*pip, "--find-links", os.path.join(bundle_root, "wheels"), "-r", wanted])
        sdist_path = os.path.join(bundle_root, "files", os.path.basename(sdist.url))
        wanted_sdist = os.path.join(scratch, "sdist.txt")
        with open(wanted_sdist, "w", encoding="utf-8") as handle:
            handle.write(f"salt @ file://{sdist_path} --hash=sha256:{sdist.sha256}\n")
        _run("building salt from its sdist", [*pip, "--no-build-isolation", "-r", wanted_sdist])
        _run("checking salt's version", [venv_python, "-c",
                                         f"import salt.version; assert salt.version.__version__ == {sdist.version!r}"])
        # No node installs Python packages: the agent carries no pip.
        _run("removing pip", [venv_python, "-m", "pip", "uninstall", "-q", "-y", "pip"])
        _make_relocatable(venv)
        _run("byte-compiling", [venv_python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                                "unchecked-hash", "-s", venv, "-p", INSTALL_PATH, venv])
        _pack(venv, dest)


def build(manifest: Manifest, bundle_root: str, python: str = NODE_PYTHON,
          cache: str | None = None) -> tuple[str, str]:
    """
    Build the agent archive from the verified wheels and sdist under
    ``bundle_root`` (``wheels/``, ``files/``) into ``bundle_root/agent/``, with
    its ``.sha256``; return its path relative to ``bundle_root`` and its sha256.
    An archive of the same inputs and recipe in ``cache`` is reused (bundles
    built side by side share it).
    """
    name = archive_name(manifest)
    relative = f"{FOLDER}/{name}"
    dest = os.path.join(bundle_root, relative)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    for stale in os.listdir(os.path.dirname(dest)):
        if not stale.startswith(name):
            os.unlink(os.path.join(os.path.dirname(dest), stale))  # another wheel set's archive
    if not cache:
        _build_into(manifest, bundle_root, python, dest)
    else:
        cached = os.path.join(cache, f"recipe{RECIPE}-{name}")
        if not os.path.exists(cached):
            os.makedirs(cache, exist_ok=True)
            _build_into(manifest, bundle_root, python, cached)
        shutil.copyfile(cached, dest)
    digest = sha256_file(dest)
    with open(dest + ".sha256", "w", encoding="utf-8") as handle:
        handle.write(f"{digest}  {name}\n")
    return relative, digest
