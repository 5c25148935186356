"""
The test mirror for the committed 1.37 manifest: built into the default cache dir
(/var/cache/brine/mirror/1.37-standins; a warm run takes about a second, a cold one about half
a minute), every artifact present and verified, and the locally built images and
stand-ins really run. Needs the network (deb.debian.org, PyPI), gcc, skopeo, and root for
the images' programs (run in a chroot).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import brine_manifest
import brine_oci
import pytest

from tests.mirror.build import build_mirror, default_out, sha256_sidecar, verify_mirror
from tests.mirror.oci import extract_image

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "salt" / "bundle" / "manifests" / "1.37.yaml"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="runs the images' programs in a chroot (root)")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def manifest() -> brine_manifest.Manifest:
    return brine_manifest.load_manifest(str(MANIFEST))


@pytest.fixture(scope="module")
def mirror(manifest: brine_manifest.Manifest) -> Path:
    out = default_out(manifest)
    assert out == Path("/var/cache/brine/mirror/1.37-standins")
    results = build_mirror(MANIFEST, out, log=lambda line: None)
    assert len(results) == len(manifest.artifacts)
    return out


def of_kind(manifest: brine_manifest.Manifest, *kinds: str) -> list[brine_manifest.Artifact]:
    return [a for a in manifest.artifacts if a.kind in kinds]


def image(manifest: brine_manifest.Manifest, name: str) -> brine_manifest.Artifact:
    return next(a for a in of_kind(manifest, "image") if a.name == name)


def test_every_artifact_is_there_and_verifies(manifest, mirror):
    missing = [a.key for a in manifest.artifacts if not (mirror / brine_manifest.mirror_path(a)).is_file()]
    assert missing == []
    assert verify_mirror(manifest, mirror) == []


def test_debs_wheels_and_files_hash_to_the_manifest(manifest, mirror):
    artifacts = of_kind(manifest, "deb", "wheel", "file")
    assert {a.kind for a in artifacts} == {"deb", "wheel", "file"}
    wrong = [a.key for a in artifacts if sha256(mirror / brine_manifest.mirror_path(a)) != a.sha256]
    assert wrong == []


def test_binaries_hash_to_their_sha256_files(manifest, mirror):
    binaries = of_kind(manifest, "binary")
    assert {a.name for a in binaries} == {"kubeadm", "kubelet", "kubectl", "crictl", "cni-plugins"}
    for artifact in binaries:
        path = mirror / brine_manifest.mirror_path(artifact)
        assert sha256_sidecar(path).read_text().strip() == sha256(path), artifact.key


def test_every_image_blob_verifies(manifest, mirror):
    for artifact in of_kind(manifest, "image"):
        archive = str(mirror / brine_manifest.mirror_path(artifact))
        assert brine_oci.verify_archive(archive) == [], artifact.key
        assert brine_oci.manifest_digest(archive, tag=artifact.image_tag).startswith("sha256:")


def test_skopeo_inspects_the_pause_archive(manifest, mirror):
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo is not installed (make -C <repo> debian-packages)")
    archive = mirror / brine_manifest.mirror_path(image(manifest, "registry.k8s.io/pause"))
    proc = subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["Digest"] == brine_oci.manifest_digest(str(archive))
    assert (report["Architecture"], report["Os"]) == ("amd64", "linux")


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_standin_binaries_answer_their_version_and_refuse_the_rest(manifest, mirror, tmp_path):
    paths = {a.name: mirror / brine_manifest.mirror_path(a) for a in of_kind(manifest, "binary")}
    with tarfile.open(paths["crictl"]) as tarball:
        assert tarball.getnames() == ["crictl"]
        tarball.extractall(tmp_path)
    crictl = tmp_path / "crictl"
    version = manifest.kubernetes_version
    assert run([str(paths["kubeadm"]), "version", "-o", "short"]).stdout == f"{version}\n"
    assert json.loads(run([str(paths["kubeadm"]), "version", "-o", "json"]).stdout)["clientVersion"]["gitVersion"] == version
    assert run([str(paths["kubelet"]), "--version"]).stdout == f"Kubernetes {version}\n"
    client = json.loads(run([str(paths["kubectl"]), "version", "--client", "-o", "json"]).stdout)
    assert client["clientVersion"]["gitVersion"] == version
    assert run([str(crictl), "--version"]).stdout == "crictl version v1.37.0\n"
    for argv in ([paths["kubeadm"], "init"], [paths["kubelet"]], [paths["kubectl"], "get", "nodes"], [crictl, "ps"]):
        refused = run([str(a) for a in argv])
        assert refused.returncode != 0 and "stand-in" in refused.stderr, argv


@contextlib.contextmanager
def started(argv: list[str]) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def stops_cleanly(proc: subprocess.Popen[str], signo: int) -> bool:
    time.sleep(0.3)
    assert proc.poll() is None, "exited before it was told to"
    proc.send_signal(signo)
    return proc.wait(timeout=10) == 0


@needs_root
def test_pause_image_runs_like_pause(manifest, mirror, tmp_path):
    artifact = image(manifest, "registry.k8s.io/pause")
    config = extract_image(mirror / brine_manifest.mirror_path(artifact), tmp_path)
    assert config["config"]["Entrypoint"] == ["/pause"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pause"]
    assert run(["chroot", str(tmp_path), "/pause", "-v"]).stdout == f"pause.c {artifact.image_tag}\n"
    with started(["chroot", str(tmp_path), "/pause"]) as proc:
        assert stops_cleanly(proc, signal.SIGTERM)


@needs_root
@pytest.mark.parametrize(
    ("name", "program", "version_line"),
    [
        ("registry.k8s.io/kube-apiserver", "/usr/local/bin/kube-apiserver", "Kubernetes v1.37.2"),
        ("registry.k8s.io/kube-controller-manager", "/usr/local/bin/kube-controller-manager", "Kubernetes v1.37.2"),
        ("registry.k8s.io/kube-scheduler", "/usr/local/bin/kube-scheduler", "Kubernetes v1.37.2"),
        ("registry.k8s.io/kube-proxy", "/usr/local/bin/kube-proxy", "Kubernetes v1.37.2"),
        ("registry.k8s.io/coredns/coredns", "/coredns", "CoreDNS-1.14.6"),
    ],
)
def test_standin_images_say_what_they_stand_in_for(manifest, mirror, tmp_path, name, program, version_line):
    config = extract_image(mirror / brine_manifest.mirror_path(image(manifest, name)), tmp_path)
    assert config["config"]["Entrypoint"] == [program]
    assert "stand-in" in config["config"]["Labels"]["io.brine.test-image"]
    component = os.path.basename(program)
    answer = run(["chroot", str(tmp_path), program, "--version"]).stdout
    assert answer == f"{version_line} (Brine stand-in for {component})\n"
    with started(["chroot", str(tmp_path), program, "--any-flag"]) as proc:
        assert stops_cleanly(proc, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@needs_root
def test_nginx_image_balances_tcp_with_the_stream_module(manifest, mirror, tmp_path):
    config = extract_image(mirror / brine_manifest.mirror_path(image(manifest, "docker.io/library/nginx")), tmp_path)
    entrypoint = config["config"]["Entrypoint"]
    assert entrypoint == ["/usr/sbin/nginx", "-g", "daemon off;"]
    listen, backend_port = free_port(), free_port()
    (tmp_path / "etc/nginx/lb.conf").write_text(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n"
        "user www-data;\nerror_log stderr;\nevents {}\n"
        f"stream {{\n  upstream apiservers {{ server 127.0.0.1:{backend_port}; }}\n"
        f"  server {{ listen 127.0.0.1:{listen}; proxy_pass apiservers; }}\n}}\n"
    )
    test = run(["chroot", str(tmp_path), *entrypoint[:1], "-t", "-c", "/etc/nginx/lb.conf"])
    assert "test is successful" in test.stderr, test.stderr

    backend = socket.create_server(("127.0.0.1", backend_port))

    def echo_once() -> None:
        connection, _ = backend.accept()
        with connection:
            connection.sendall(b"apiserver says: " + connection.recv(64))

    threading.Thread(target=echo_once, daemon=True).start()
    with backend, started(["chroot", str(tmp_path), *entrypoint, "-c", "/etc/nginx/lb.conf"]) as nginx:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", listen), timeout=5)
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline and nginx.poll() is None, "nginx did not start listening"
                time.sleep(0.1)
        with client:
            client.sendall(b"ping")
            assert client.recv(64) == b"apiserver says: ping"
        assert stops_cleanly(nginx, signal.SIGQUIT)
