"""
What Brine's states write on each kind of machine, rendered on the deploy side
for the demo cluster: apt pointed at the file server only, containerd pulling
every public registry name from the private registry, the deploy node's
registry with TLS and htpasswd. Nothing here connects to any machine.
"""

import os
import tomllib

import brine_render
import pytest
import salt.config
import yaml

from tests.saltenv import SaltEnv

REGISTRY = "10.77.0.1:5000"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("render")))
    assert salt_env.salt_run("cluster.secrets", "demo").returncode == 0
    return salt_env


@pytest.fixture(scope="module")
def opts(env):
    return salt.config.master_config(os.path.join(env.config_dir, "master"))


def files_of(opts, minion_id, grains=None):
    return {f.path: f for f in brine_render.render_states(opts, minion_id, grains=grains)}


@pytest.fixture(scope="module")
def worker(opts):
    return files_of(opts, "worker1.demo")


@pytest.fixture(scope="module")
def deploy(opts):
    return files_of(opts, "deploy.demo")


def test_apt_reads_only_the_file_server(worker):
    assert worker["/etc/apt/sources.list.d/brine.list"].text.splitlines()[-1] == \
        "deb [trusted=yes] http://10.77.0.1:8080/lines/1.37/debs ./"
    assert worker["/etc/apt/sources.list"].text.startswith("#")


def test_containerd_config(worker):
    config = tomllib.loads(worker["/etc/containerd/config.toml"].text)
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert config["version"] == 2
    assert cri["sandbox_image"] == f"{REGISTRY}/pause:3.10.2"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
    assert cri["registry"]["configs"][REGISTRY]["auth"]["username"] == "brine"
    assert cri["restrict_oom_score_adj"] is False


def test_containerd_restricts_oom_scores_where_the_kernel_forbids_lowering(opts):
    files = files_of(opts, "worker2.demo", grains={"brine_oom_score_lowerable": False})
    config = tomllib.loads(files["/etc/containerd/config.toml"].text)
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["restrict_oom_score_adj"] is True


@pytest.mark.parametrize("name", ["docker.io", "registry.k8s.io", "k8s.gcr.io", "quay.io", "ghcr.io", REGISTRY])
def test_every_public_registry_name_resolves_to_the_private_registry_only(worker, name):
    hosts = tomllib.loads(worker[f"/etc/containerd/certs.d/{name}/hosts.toml"].text)
    assert hosts["server"] == f"https://{REGISTRY}"
    assert list(hosts["host"]) == [f"https://{REGISTRY}"]
    assert hosts["host"][f"https://{REGISTRY}"]["capabilities"] == ["pull", "resolve"]
    assert hosts["host"][f"https://{REGISTRY}"]["ca"] == "/usr/local/share/ca-certificates/brine-bundle-ca.crt"


def test_deploy_node_registry_config(deploy):
    config = yaml.safe_load(deploy["/etc/brine/registry/config.yml"].text)
    assert config["http"]["addr"] == ":5000"
    assert config["http"]["tls"] == {"certificate": "/etc/brine/registry/tls.crt", "key": "/etc/brine/registry/tls.key"}
    assert config["auth"]["htpasswd"]["path"] == "/etc/brine/registry/htpasswd"
    assert deploy["/etc/brine/registry/htpasswd"].text.startswith("brine:$2b$")


def test_deploy_node_file_server_config(deploy):
    text = deploy["/etc/nginx/conf.d/brine-file-server.conf"].text
    assert "listen 8080;" in text
    assert "alias /srv/brine/bundles/current/;" in text


def test_deploy_node_packages_come_from_the_bundle_only(deploy):
    assert deploy["/etc/brine/bundle.list"].text == "deb [trusted=yes] file:/srv/brine/bundles/current/debs ./"


def test_nodes_get_no_deploy_node_secret(worker):
    # The one private key a worker holds is its own salt-minion key (tests/render/test_day2_render.py).
    assert [path for path, f in worker.items() if "PRIVATE KEY" in f.text] == ["/etc/salt/pki/minion/minion.pem"]
    assert not any("$2b$" in f.text for f in worker.values())


def test_egress_check_on_rendered_states(env):
    proc = env.salt_run("cluster.egress", "demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cluster demo: no image or URL leaves the cluster" in proc.stdout
    # Rendering is done on the deploy side: no machine was contacted.
    assert not os.path.exists(os.path.join(env.state, "salt-ssh.log"))


def test_egress_check_catches_a_third_party_manifest(env):
    manifest_override = os.path.join(env.root, "addon.yaml")
    with open(manifest_override, "w", encoding="utf-8") as handle:
        handle.write("spec:\n  image: quay.io/calico/node:v3.31.0\n")
    proc = env.salt_run("cluster.egress", "demo", f"paths={manifest_override}")
    assert proc.returncode != 0
    assert f"{manifest_override}:2: quay.io/calico/node:v3.31.0 is not an image of the private registry" in proc.stdout
