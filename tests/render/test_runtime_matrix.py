"""
The runtime switch, rendered for both settings of env.runtime: containerd
(current Kubernetes) and docker (Kubernetes 1.20, whose kubelet still speaks to
Docker). Each writes only its own runtime's files, all pointing at the
private registry.
"""

import base64
import json
import os

import brine_render
import pytest
import salt.config

from tests.saltenv import SaltEnv

REGISTRY = "10.77.0.1:5000"


def rendered(tmp_path, runtime, version):
    env = SaltEnv(str(tmp_path))

    def change(data):
        data["env"]["runtime"] = runtime
        data["env"]["kubernetes_version"] = version

    env.edit("demo", "env.sls", change)
    assert env.salt_run("cluster.secrets", "demo").returncode == 0
    opts = salt.config.master_config(os.path.join(env.config_dir, "master"))
    return {f.path: f for f in brine_render.render_states(opts, "worker1.demo", mods=["runtime"])}


@pytest.fixture(scope="module")
def containerd(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("containerd"), "containerd", "1.37.2")


@pytest.fixture(scope="module")
def docker(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("docker"), "docker", "1.20.2")


def test_containerd_writes_only_containerd_files(containerd):
    assert "/etc/containerd/config.toml" in containerd
    assert not any(path.startswith("/etc/docker") for path in containerd)


def test_docker_writes_only_docker_files(docker):
    assert not any(path.startswith("/etc/containerd") for path in docker)
    daemon = json.loads(docker["/etc/docker/daemon.json"].text)
    assert daemon["exec-opts"] == ["native.cgroupdriver=systemd"]
    assert daemon["registry-mirrors"] == [f"https://{REGISTRY}"]
    assert docker[f"/etc/docker/certs.d/{REGISTRY}/ca.crt"].text.startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("path", ["/root/.docker/config.json", "/var/lib/kubelet/config.json"])
def test_docker_and_kubelet_get_the_registry_credentials(docker, path):
    auth = json.loads(docker[path].text)["auths"][REGISTRY]["auth"]
    assert base64.b64decode(auth).decode().startswith("brine:")
