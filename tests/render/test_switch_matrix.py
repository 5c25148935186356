"""
Every state of every kind of machine renders for each combination of the
cluster's switches — runtime containerd/docker, kube-proxy ipvs/iptables —
and nothing it would write leaves the cluster.
"""

import os

import brine_egress
import brine_render
import pytest
import salt.config
import yaml

from tests.saltenv import SaltEnv

COMBINATIONS = [
    ("containerd", "1.37.2", "iptables"),
    ("containerd", "1.37.2", "ipvs"),
    ("docker", "1.20.2", "iptables"),
    ("docker", "1.20.2", "ipvs"),
]


@pytest.fixture(scope="module", params=COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def cluster(request, tmp_path_factory):
    runtime, version, proxy_mode = request.param
    env = SaltEnv(str(tmp_path_factory.mktemp("matrix")))

    def change(data):
        data["env"].update(runtime=runtime, kubernetes_version=version)
        data["env"]["kube_proxy"]["mode"] = proxy_mode

    env.edit("demo", "env.sls", change)
    assert env.salt_run("cluster.validate", "demo").returncode == 0
    assert env.salt_run("cluster.secrets", "demo").returncode == 0
    opts = salt.config.master_config(os.path.join(env.config_dir, "master"))
    with open(env.cluster_file("demo", "env.sls"), encoding="utf-8") as handle:
        pillar_env = yaml.safe_load(handle)["env"]
    with open(env.cluster_file("demo", "inventory.sls"), encoding="utf-8") as handle:
        nodes = yaml.safe_load(handle)["inventory"]["nodes"]
    return opts, request.param, brine_egress.Allowed.for_cluster(
        {**pillar_env, "cluster_domain": "cluster.local"}, nodes)


@pytest.mark.parametrize("machine", ["master1.demo", "worker1.demo", "deploy.demo"])
def test_highstate_renders_and_stays_inside(cluster, machine):
    opts, (runtime, _, _), allowed = cluster
    files = brine_render.render_states(opts, machine)
    assert files, f"{machine}: no file rendered"
    paths = {f.path for f in files}
    if machine != "deploy.demo":
        assert ("/etc/containerd/config.toml" in paths) == (runtime == "containerd")
        assert ("/etc/docker/daemon.json" in paths) == (runtime == "docker")
    findings = [str(f) for item in files for f in brine_egress.scan_text(item.path, item.text, allowed)]
    assert findings == []
