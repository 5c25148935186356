"""
kubeadm's configuration as Brine renders it (_utils/brine_kubeadm.py), for each API
version: the shapes each version takes, what every join pins, the patches, the
preflight checks told to step aside; then the real kubeadm of each API version reading
the files strictly (unknown fields are errors): tests/e2e/test_kubeadm_strict.py.
"""

from __future__ import annotations

import json

import brine_kubeadm
import pytest

from tests.kubeadm_cases import CA_HASH, TOKEN, by_kind, cluster, docs_of


@pytest.mark.parametrize(("version", "api"), [
    ("1.20.2", "v1beta2"), ("1.21.14", "v1beta2"), ("1.22.0", "v1beta3"), ("1.30.9", "v1beta3"),
    ("1.31.0", "v1beta4"), ("1.36.3", "v1beta4"), ("1.37.2", "v1beta4"),
])  # fmt: skip
def test_the_api_version_follows_the_release(version, api):
    assert brine_kubeadm.api_version(version) == f"kubeadm.k8s.io/{api}"


def test_the_first_master_initialises_with_the_whole_configuration():
    full = cluster()
    docs = by_kind(docs_of(full, "master1"))
    assert list(docs) == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration", "KubeProxyConfiguration"]
    init, config = docs["InitConfiguration"], docs["ClusterConfiguration"]
    assert init["bootstrapTokens"][0]["token"] == TOKEN
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.77.0.11", "bindPort": 6443}
    assert config["controlPlaneEndpoint"] == "127.0.0.1:6443"
    assert config["imageRepository"] == "10.77.0.1:5000"
    assert config["dns"]["imageRepository"] == "10.77.0.1:5000/coredns"
    assert config["etcd"]["external"]["endpoints"] == [f"https://10.77.0.1{i}:2379" for i in (1, 2, 3)]
    assert {"127.0.0.1", "localhost", "master2", "10.77.0.13"} <= set(config["apiServer"]["certSANs"])
    assert config["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/16",
                                    "dnsDomain": "cluster.local"}
    assert docs["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert docs["KubeletConfiguration"]["clusterDNS"] == ["10.96.0.10"]
    assert docs["KubeletConfiguration"]["failCgroupV1"] is False
    assert docs["KubeProxyConfiguration"]["mode"] == "iptables"


@pytest.mark.parametrize("node", ["master2", "worker1"])
def test_every_join_pins_the_ca_and_never_skips_its_verification(node):
    (join,) = docs_of(cluster(), node)
    token = join["discovery"]["bootstrapToken"]
    assert token == {"token": TOKEN, "apiServerEndpoint": "10.77.0.11:6443", "caCertHashes": [CA_HASH]}
    assert "unsafeSkipCAVerification" not in json.dumps(join)
    assert ("controlPlane" in join) == node.startswith("master")


def test_component_flags_take_each_api_versions_shape():
    extra = {"apiserver": {"audit-log-maxage": "7"}, "controller_manager": {}, "scheduler": {}, "kubelet": {}}
    for version, shape in (("1.37.2", [{"name": "audit-log-maxage", "value": "7"}]),
                           ("1.30.0", {"audit-log-maxage": "7"}), ("1.20.2", {"audit-log-maxage": "7"})):
        full = cluster(version, kubeadm={"extra_args": extra}) if version != "1.30.0" else None
        if full is None:  # 1.30 is no supported release line: render the util directly
            full = cluster("1.37.2", kubeadm={"extra_args": extra})
            full["env"]["kubernetes_version"] = version
        config = by_kind(docs_of(full, "master1"))["ClusterConfiguration"]
        assert config["apiServer"]["extraArgs"] == shape, version


def test_v1beta2_has_no_patches_field_and_takes_the_experimental_flag():
    full = cluster("1.20.2", coredns=False)
    init = by_kind(docs_of(full, "master1"))["InitConfiguration"]
    assert "patches" not in init
    master1 = full["inventory"]["nodes"][0]
    argv = brine_kubeadm.command(full["env"], master1, full["inventory"], "/etc/kubernetes/brine/kubeadm.yaml")
    assert f"--experimental-patches={brine_kubeadm.PATCHES_DIR}" in argv
    assert "--skip-phases=addon/coredns" in argv
    assert "failCgroupV1" not in by_kind(docs_of(full, "master1"))["KubeletConfiguration"]
    assert by_kind(docs_of(full, "master1"))["ClusterConfiguration"]["dns"]["type"] == "CoreDNS"


def test_masters_patch_the_api_server_onto_their_own_address():
    full = cluster()
    master2 = full["inventory"]["nodes"][1]
    patches = brine_kubeadm.patches(full["env"], master2)
    assert json.loads(patches["kube-apiserver0+json.json"]) == [
        {"op": "add", "path": "/spec/containers/0/command/-", "value": "--bind-address=10.77.0.12"}]
    worker = full["inventory"]["nodes"][3]
    assert brine_kubeadm.patches(full["env"], worker) == {}


def test_env_patches_become_strategic_merge_files_in_order():
    patch = [{"spec": {"containers": [{"name": "kube-scheduler", "resources": {"requests": {"cpu": "200m"}}}]}},
             {"metadata": {"labels": {"tier": "scheduler"}}}]
    full = cluster(kubeadm={"patches": {"kube-scheduler": patch}})
    files = brine_kubeadm.patches(full["env"], full["inventory"]["nodes"][0])
    assert [name for name in files if name.startswith("kube-scheduler")] == [
        "kube-scheduler1+strategic.json", "kube-scheduler2+strategic.json"]
    assert json.loads(files["kube-scheduler1+strategic.json"]) == patch[0]


def test_preflight_ignores_only_what_brine_stands_in_for():
    full = cluster()
    nodes = {n["name"]: n for n in full["inventory"]["nodes"]}

    def ignored(name, env=None):
        argv = brine_kubeadm.command(env or full["env"], nodes[name], full["inventory"], "/x")
        flag = next((a for a in argv if a.startswith("--ignore-preflight-errors=")), "=")
        return set(flag.split("=", 1)[1].split(",")) - {""}

    assert ignored("master1") == {"DirAvailable--etc-kubernetes-manifests", "ExternalEtcdVersion", "SystemVerification"}
    assert ignored("master2") == {"DirAvailable--etc-kubernetes-manifests", "ExternalEtcdVersion", "Port-6443",
                                  "SystemVerification"}
    assert ignored("worker1") == {"DirAvailable--etc-kubernetes-manifests", "SystemVerification"}
    old = cluster("1.20.2", coredns=False)["env"]
    assert ignored("worker1", old) == {"DirAvailable--etc-kubernetes-manifests"}
    assert "ImagePull" in ignored("master1", old)


def test_the_standalone_kubelet_serves_nothing_beyond_the_node():
    config = brine_kubeadm.standalone_kubelet_configuration(cluster()["env"])
    assert config["address"] == "127.0.0.1" and config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"


def test_the_standalone_kubelet_finds_containerd_on_every_version():
    new, old = cluster()["env"], cluster("1.20.2", coredns=False)["env"]
    assert brine_kubeadm.standalone_kubelet_arguments(new) == []
    socket = "unix:///run/containerd/containerd.sock"
    assert brine_kubeadm.standalone_kubelet_configuration(new)["containerRuntimeEndpoint"] == socket
    assert brine_kubeadm.standalone_kubelet_arguments(old) == ["--container-runtime=remote",
                                                               f"--container-runtime-endpoint={socket}"]
    assert "containerRuntimeEndpoint" not in brine_kubeadm.standalone_kubelet_configuration(old)


def test_kube_proxy_leaves_the_conntrack_limit_to_the_os_step():
    docs = by_kind(docs_of(cluster(), "master1"))
    assert docs["KubeProxyConfiguration"]["conntrack"] == {"maxPerCore": 0}
