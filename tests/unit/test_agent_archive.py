"""
The prebuilt day-2 agent: its name follows the manifest's wheel set, a built
environment is made relocatable (scripts start through the python beside
them, nothing names the build folder), and agent-install.py - what nodes and
minion-bootstrap.sh run - installs an archive served over HTTP only when its
sha256 matches, refuses members that would land or link outside the install
folder, and leaves an installed agent alone.
"""

import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading

import brine_agent_archive
import brine_manifest
import pytest

from tests.saltenv import REPO_ROOT

INSTALLER = os.path.join(REPO_ROOT, "salt", "day2", "files", "agent-install.py")


def manifest(line="1.37"):
    return brine_manifest.load_manifest(os.path.join(REPO_ROOT, "salt", "bundle", "manifests", f"{line}.yaml"))


def test_the_name_follows_the_node_wheels_and_the_sdist():
    loaded = manifest()
    name = brine_agent_archive.archive_name(loaded)
    assert name.startswith("salt-agent-3008.4-cp311-") and name.endswith(".tar.gz")
    wheel = next(a for a in loaded.artifacts if a.kind == "wheel" and "node" in a.consumers)
    wheel.sha256 = "0" * 64
    assert brine_agent_archive.archive_name(loaded) != name
    # a wheel the nodes do not get does not change the agent
    again = manifest()
    again.artifacts.append(brine_manifest.Artifact(kind="wheel", name="deploy-only", version="1", arch="all",
                                                   url="https://files.example/deploy_only-1-py3-none-any.whl",
                                                   sha256="1" * 64, consumers=["deploy"]))
    assert brine_agent_archive.archive_name(again) == name


def test_a_manifest_without_salt_carries_no_agent_and_says_what_is_missing():
    loaded = manifest()
    loaded.artifacts = [a for a in loaded.artifacts if a.kind != "file"]
    assert not brine_agent_archive.carried(loaded)
    with pytest.raises(brine_agent_archive.AgentArchiveError, match="lacks the sdist"):
        brine_agent_archive.inputs(loaded)


def test_a_builder_python_other_than_the_nodes_is_refused(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text("#!/bin/sh\necho 3.12\n")
    fake.chmod(0o755)
    with pytest.raises(brine_agent_archive.AgentArchiveError, match=r"Python 3\.12, the nodes run 3\.11"):
        brine_agent_archive.build(manifest(), str(tmp_path / "bundle"), python=str(fake))


def test_an_archive_of_the_same_inputs_and_recipe_is_reused_from_the_cache(tmp_path):
    loaded = manifest()
    name = brine_agent_archive.archive_name(loaded)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / f"recipe{brine_agent_archive.RECIPE}-{name}").write_bytes(b"prebuilt")
    (tmp_path / "bundle" / "agent").mkdir(parents=True)
    (tmp_path / "bundle" / "agent" / "salt-agent-old.tar.gz").write_bytes(b"another wheel set")
    # no interpreter is needed: nothing is built
    relative, digest = brine_agent_archive.build(loaded, str(tmp_path / "bundle"), python="/nonexistent",
                                                 cache=str(cache))
    assert relative == f"agent/{name}" and digest == hashlib.sha256(b"prebuilt").hexdigest()
    assert (tmp_path / "bundle" / relative).read_bytes() == b"prebuilt"
    assert sorted(os.listdir(tmp_path / "bundle" / "agent")) == [name, f"{name}.sha256"]
    assert (tmp_path / "bundle" / f"{relative}.sha256").read_text() == \
        f"{hashlib.sha256(b'prebuilt').hexdigest()}  {name}\n"


def test_a_venv_is_made_relocatable(tmp_path):
    venv = tmp_path / "build" / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    script = venv / "bin" / "hello"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nprint('hello from', sys.prefix)\n")
    script.chmod(0o755)
    (venv / "lib" / "direct_url.json").write_text("{}")
    brine_agent_archive._make_relocatable(str(venv))
    assert not list((venv / "bin").glob("activate*"))
    assert not (venv / "lib" / "direct_url.json").exists()
    assert "command" not in (venv / "pyvenv.cfg").read_text()
    archive = tmp_path / "agent.tar.gz"
    brine_agent_archive._pack(str(venv), str(archive))
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(moved)
    out = subprocess.run([str(moved / "bin" / "hello")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"hello from {moved}"
    assert str(tmp_path / "build") not in "".join(p.read_text(errors="replace") for p in moved.rglob("*")
                                                  if p.is_file() and not p.is_symlink())
    # the same files give the same bytes
    again = tmp_path / "again.tar.gz"
    brine_agent_archive._pack(str(venv), str(again))
    assert again.read_bytes() == archive.read_bytes()


def tar_of(members: dict) -> bytes:
    """A gzip'd tar: name -> bytes (a file) or ('link', target)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(content, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, content[1]
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o755
                tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


# An "agent" whose python prints a salt version: enough for the installer's check.
FAKE_PYTHON = b"#!/bin/sh\necho 3008.4\n"


@pytest.fixture
def served(tmp_path):
    """A file server on loopback over tmp_path/www; yields (www folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def publish(www, name, data, sha=None):
    (www / name).write_bytes(data)
    (www / f"{name}.sha256").write_text(f"{sha or hashlib.sha256(data).hexdigest()}  {name}\n")


def install(url, folder):
    return subprocess.run([sys.executable, INSTALLER, url, str(folder)], capture_output=True, text=True, timeout=60)


def test_the_installer_installs_once_and_leaves_it_alone(served, tmp_path):
    www, base = served
    publish(www, "salt-agent-a.tar.gz", tar_of({"bin/python": FAKE_PYTHON, "lib/salt.txt": b"a"}))
    folder = tmp_path / "opt" / "salt"
    first = install(f"{base}/salt-agent-a.tar.gz", folder)
    assert first.returncode == 0, first.stderr
    assert "installed in" in first.stdout and (folder / "lib" / "salt.txt").read_text() == "a"
    assert (folder / ".salt-agent-a.tar.gz").exists()
    second = install(f"{base}/salt-agent-a.tar.gz", folder)
    assert second.returncode == 0 and "already" in second.stdout
    # a new agent replaces the old one whole, and nothing is left beside it
    publish(www, "salt-agent-b.tar.gz", tar_of({"bin/python": FAKE_PYTHON, "lib/other.txt": b"b"}))
    third = install(f"{base}/salt-agent-b.tar.gz", folder)
    assert third.returncode == 0, third.stderr
    assert not (folder / "lib" / "salt.txt").exists() and (folder / ".salt-agent-b.tar.gz").exists()
    assert sorted(os.listdir(folder.parent)) == ["salt"]


def test_the_installer_refuses_a_mismatch_and_changes_nothing(served, tmp_path):
    www, base = served
    publish(www, "salt-agent-a.tar.gz", tar_of({"bin/python": FAKE_PYTHON}), sha="ab" * 32)
    folder = tmp_path / "salt"
    proc = install(f"{base}/salt-agent-a.tar.gz", folder)
    assert proc.returncode != 0
    assert f"{base}/salt-agent-a.tar.gz: sha256 mismatch: expected {'ab' * 32}, got" in proc.stderr
    assert not folder.exists() and os.listdir(tmp_path) == ["www"]


@pytest.mark.parametrize("members, refused", [
    ({"../evil": b"x"}, "outside the install folder"),
    ({"bin/python": ("link", "/etc/shadow")}, "refusing link"),
    ({"lib/up": ("link", "../../../etc")}, "refusing link"),
])
def test_the_installer_refuses_members_outside_its_folder(served, tmp_path, members, refused):
    www, base = served
    publish(www, "salt-agent-x.tar.gz", tar_of({**members, "bin/sh-ok": FAKE_PYTHON}))
    proc = install(f"{base}/salt-agent-x.tar.gz", tmp_path / "salt")
    assert proc.returncode != 0 and refused in proc.stderr
    assert not (tmp_path / "evil").exists() and not (tmp_path / "salt").exists()


def test_the_installer_refuses_an_agent_that_does_not_run(served, tmp_path):
    www, base = served
    publish(www, "salt-agent-a.tar.gz", tar_of({"bin/python": b"#!/bin/sh\necho broken >&2; exit 1\n"}))
    proc = install(f"{base}/salt-agent-a.tar.gz", tmp_path / "salt")
    assert proc.returncode != 0 and "does not run: broken" in proc.stderr
    assert not (tmp_path / "salt").exists()
