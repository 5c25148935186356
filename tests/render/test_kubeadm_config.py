"""
kubeadm's configuration as Brine renders it (_utils/brine_kubeadm.py), for each API
version: the shapes each version takes, what every join pins, the patches, the
preflight checks told to step aside; then the real kubeadm of each API version reading
the files strictly (unknown fields are errors), in the slow lane.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import brine_kubeadm
import brine_pillar
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_CACHE = Path("/var/cache/brine/k8s")
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "ab" * 32


def cluster(version: str = "1.37.2", **env_changes) -> dict:
    with open(REPO_ROOT / "pillar/clusters/demo/env.sls", encoding="utf-8") as handle:
        env = yaml.safe_load(handle)
    with open(REPO_ROOT / "pillar/clusters/demo/inventory.sls", encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    env["env"]["kubernetes_version"] = version
    env["env"].update(env_changes)
    return brine_pillar.parse({**env, **inventory}).model_dump(mode="json")


def docs_of(full: dict, node: str) -> list[dict]:
    this = next(n for n in full["inventory"]["nodes"] if n["name"] == node)
    return brine_kubeadm.documents(full["env"], full["inventory"], this, TOKEN, CA_HASH)


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}


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
    assert ignored("worker1") == {"SystemVerification"}
    old = cluster("1.20.2", coredns=False)["env"]
    assert ignored("worker1", old) == set()
    assert "ImagePull" in ignored("master1", old)


def test_the_standalone_kubelet_serves_nothing_beyond_the_node():
    config = brine_kubeadm.standalone_kubelet_configuration(cluster()["env"])
    assert config["address"] == "127.0.0.1" and config["readOnlyPort"] == 0
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"


# --- the real kubeadm reads them strictly (slow lane: needs `make k8s-artifacts`) --------


@pytest.fixture(scope="session")
def kubeadm_binaries():
    """kubeadm 1.37 (v1beta4), 1.36 (still reads v1beta3) and 1.20.2 (v1beta2), built if absent."""
    proc = subprocess.run([str(REPO_ROOT / "tests/k8s/build.sh"), "k8s", "debian"], capture_output=True, text=True,
                          timeout=5400, check=False, env={**os.environ, "K8S_VERSIONS": "v1.36.3 v1.37.2"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"v1beta4": K8S_CACHE / "v1.37.2/bin/kubeadm", "v1beta3": K8S_CACHE / "v1.36.3/bin/kubeadm",
            "v1beta2": K8S_CACHE / "v1.20.2/bin/kubeadm"}


def write_config(tmp_path: Path, docs: list[dict]) -> Path:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.mark.slow
@pytest.mark.parametrize("node", ["master1", "master2", "worker1"])
@pytest.mark.parametrize("api", ["v1beta4", "v1beta3"])
def test_kubeadm_validates_the_config_strictly(kubeadm_binaries, tmp_path, api, node):
    full = cluster("1.37.2", kubeadm={"extra_args": {"apiserver": {"audit-log-maxage": "7"}, "kubelet": {"v": "2"}}})
    kubeadm = kubeadm_binaries[api]
    if api == "v1beta3":  # render as 1.30 would, then name a version this kubeadm deploys
        full["env"]["kubernetes_version"] = "1.30.0"
    docs = docs_of(full, node)
    for doc in docs:
        if doc["kind"] == "ClusterConfiguration":
            doc["kubernetesVersion"] = "v1.36.3" if api == "v1beta3" else "v1.37.2"
    assert docs[0]["apiVersion"] == f"kubeadm.k8s.io/{api}"
    proc = subprocess.run([str(kubeadm), "config", "validate", "--config", str(write_config(tmp_path, docs))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # a field kubeadm does not know is an error: the check can fail
    broken = copy.deepcopy(docs)
    broken[0]["nodeRegistration"]["criSockett"] = "x"
    proc = subprocess.run([str(kubeadm), "config", "validate", "--config", str(write_config(tmp_path, broken))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "criSockett" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_kubeadm_1_20_reads_the_v1beta2_config_without_unknown_fields(kubeadm_binaries, tmp_path):
    full = cluster("1.20.2", coredns=False)
    path = write_config(tmp_path, docs_of(full, "master1"))
    proc = subprocess.run([str(kubeadm_binaries["v1beta2"]), "config", "images", "list", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "unknown field" not in proc.stderr, proc.stderr
    assert "10.77.0.1:5000/kube-apiserver:v1.20.2" in proc.stdout
    broken = docs_of(full, "master1")
    broken[1]["networking"]["podSubnett"] = "x"
    proc = subprocess.run([str(kubeadm_binaries["v1beta2"]), "config", "images", "list", "--config",
                           str(write_config(tmp_path, broken))], capture_output=True, text=True, timeout=60, check=False)
    assert "podSubnett" in proc.stderr
