"""
The cluster pillar validator: each bad input is reported with its exact field
path, every problem of a pillar at once, and the shipped clusters pass.
"""

import copy
import os

import brine_pillar
import pytest
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_cluster(name):
    data = {}
    for filename in ("env.sls", "inventory.sls"):
        with open(os.path.join(REPO_ROOT, "pillar", "clusters", name, filename), encoding="utf-8") as handle:
            data.update(yaml.safe_load(handle))
    return data


BASE = {
    "env": {
        "name": "demo",
        "kubernetes_version": "1.37.2",
        "runtime": "containerd",
        "network": {"plugin": "calico", "calico": {"mode": "vxlan"}},
        "kube_proxy": {"mode": "iptables"},
        "networks": {"node": "10.77.0.0/24", "pod": "10.244.0.0/16", "service": "10.96.0.0/16"},
        "bundle": {"url": "http://10.77.0.1:8080/", "registry": "10.77.0.1:5000"},
        "ssh": {"jump_host": "master1", "user": "root", "private_key": ".brine/testbed/id_ed25519"},
    },
    "inventory": {
        "nodes": [
            {"name": "master1", "address": "10.77.0.11", "roles": ["master", "etcd"]},
            {"name": "master2", "address": "10.77.0.12", "roles": ["master", "etcd"]},
            {"name": "master3", "address": "10.77.0.13", "roles": ["master", "etcd"]},
            {"name": "worker1", "address": "10.77.0.21", "roles": ["worker"]},
        ]
    },
}

DELETE = object()


def mutate(data, path, value):
    """Set (or with DELETE remove) the value at a dotted path; [n] indexes lists."""
    keys = []
    for part in path.split("."):
        while "[" in part:
            head, _, rest = part.partition("[")
            if head:
                keys.append(head)
            index, _, part = rest.partition("]")
            keys.append(int(index))
        if part:
            keys.append(part)
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value


# (case id, [(path, new value)...], expected field path, a fragment of the message)
CASES = [
    ("unknown-top-key", [("env.netwrok", {})], "env.netwrok", "did you mean 'network'"),
    ("unknown-nested-key", [("env.network.calico.mod", "bgp")], "env.network.calico.mod", "did you mean 'mode'"),
    ("unknown-node-key", [("inventory.nodes[1].adress", "10.77.0.40")], "inventory.nodes[1].adress", "did you mean 'address'"),
    ("unknown-ssh-key", [("env.ssh.jumphost", "master1")], "env.ssh.jumphost", "did you mean 'jump_host'"),
    ("unknown-root-key", [("invetory", {})], "invetory", "did you mean 'inventory'"),
    ("missing-env", [("env", DELETE)], "env", "is required"),
    ("missing-inventory", [("inventory", DELETE)], "inventory", "is required"),
    ("missing-name", [("env.name", DELETE)], "env.name", "is required"),
    ("missing-version", [("env.kubernetes_version", DELETE)], "env.kubernetes_version", "is required"),
    ("missing-node-network", [("env.networks.node", DELETE)], "env.networks.node", "is required"),
    ("missing-bundle-url", [("env.bundle.url", DELETE)], "env.bundle.url", "is required"),
    ("missing-registry", [("env.bundle.registry", DELETE)], "env.bundle.registry", "is required"),
    ("missing-private-key", [("env.ssh.private_key", DELETE)], "env.ssh.private_key", "is required"),
    ("missing-node-address", [("inventory.nodes[2].address", DELETE)], "inventory.nodes[2].address", "is required"),
    ("missing-node-roles", [("inventory.nodes[3].roles", DELETE)], "inventory.nodes[3].roles", "is required"),
    ("wrong-type-api-port", [("env.api_port", "https")], "env.api_port", "integer"),
    ("api-port-range", [("env.api_port", 70000)], "env.api_port", "65535"),
    ("ssh-port-range", [("env.ssh.port", 0)], "env.ssh.port", "1 to 65535"),
    ("wrong-type-nodes", [("inventory.nodes", {"master1": {}})], "inventory.nodes", "list"),
    ("wrong-type-roles", [("inventory.nodes[0].roles", "master")], "inventory.nodes[0].roles", "list"),
    ("wrong-type-labels", [("inventory.nodes[3].labels", ["a=b"])], "inventory.nodes[3].labels", "dictionary"),
    ("empty-roles", [("inventory.nodes[3].roles", [])], "inventory.nodes[3].roles", "is empty"),
    ("unknown-role", [("inventory.nodes[3].roles", ["minion"])], "inventory.nodes[3].roles[0]", "not one of the choices"),
    ("runtime-choice", [("env.runtime", "cri-o")], "env.runtime", "containerd (default) or docker"),
    ("docker-with-1.20-is-fine-but-typo", [("env.runtime", "docker"), ("env.kubernetes_version", "1.20.2"), ("env.kube_proxy.mod", "x")],
     "env.kube_proxy.mod", "did you mean 'mode'"),
    ("cni-plugin-choice", [("env.network.plugin", "flannel")], "env.network.plugin", "calico"),
    ("calico-mode-choice", [("env.network.calico.mode", "ipip")], "env.network.calico.mode", "vxlan"),
    ("kube-proxy-choice", [("env.kube_proxy.mode", "nftables")], "env.kube_proxy.mode", "ipvs (default) or iptables"),
    ("bad-pod-cidr", [("env.networks.pod", "10.244.0.0/33")], "env.networks.pod", "not a valid network"),
    ("bad-service-cidr", [("env.networks.service", "ten-dot-96")], "env.networks.service", "not a valid network"),
    ("cidr-host-bits", [("env.networks.node", "10.77.0.1/24")], "env.networks.node", "not a valid network"),
    ("bad-node-address", [("inventory.nodes[1].address", "10.77.0.300")], "inventory.nodes[1].address", "not a valid IP address"),
    ("pod-overlaps-service", [("env.networks.pod", "10.96.0.0/12")], "env.networks.pod", "overlaps env.networks.service"),
    ("pod-overlaps-node", [("env.networks.pod", "10.77.0.0/16")], "env.networks.pod", "overlaps env.networks.node"),
    ("service-overlaps-node", [("env.networks.service", "10.77.0.0/20")], "env.networks.service", "overlaps env.networks.node"),
    (
        "default-service-overlaps-node",
        [
            ("env.networks.service", DELETE),
            ("env.networks.node", "10.100.0.0/24"),
            *[(f"inventory.nodes[{i}].address", f"10.100.0.{11 + i}") for i in range(4)],
        ],
        "env.networks.service",
        "10.96.0.0/12",
    ),
    (
        "address-outside-node-network",
        [("inventory.nodes[2].address", "10.78.0.13")],
        "inventory.nodes[2].address",
        "outside env.networks.node",
    ),
    (
        "duplicate-node-name",
        [("inventory.nodes[3].name", "master2")],
        "inventory.nodes[3].name",
        "already the name of inventory.nodes[1]",
    ),
    (
        "duplicate-address",
        [("inventory.nodes[3].address", "10.77.0.11")],
        "inventory.nodes[3].address",
        "already the address of inventory.nodes[0]",
    ),
    ("node-name-uppercase", [("inventory.nodes[3].name", "Worker1")], "inventory.nodes[3].name", "RFC 1123"),
    ("node-name-underscore", [("inventory.nodes[3].name", "worker_1")], "inventory.nodes[3].name", "RFC 1123"),
    ("node-name-too-long", [("inventory.nodes[3].name", "w" * 64)], "inventory.nodes[3].name", "RFC 1123"),
    ("cluster-name-dot", [("env.name", "demo.prod")], "env.name", "RFC 1123"),
    ("cluster-name-not-folder", [("env.name", "prod")], "env.name", "differs from the cluster's folder 'demo'"),
    (
        "zero-masters",
        [(f"inventory.nodes[{i}].roles", ["etcd"]) for i in range(3)],
        "inventory.nodes",
        "no node has the role master",
    ),
    ("no-etcd", [(f"inventory.nodes[{i}].roles", ["master"]) for i in range(3)], "inventory.nodes", "no node has the role etcd"),
    ("duplicate-role", [("inventory.nodes[3].roles", ["worker", "worker"])], "inventory.nodes[3].roles", "lists a role twice"),
    ("jump-host-not-in-inventory", [("env.ssh.jump_host", "bastion")], "env.ssh.jump_host", "not a node of the inventory"),
    ("jump-host-typo", [("env.ssh.jump_host", "mastr1")], "env.ssh.jump_host", "did you mean 'master1'"),
    ("unsupported-version", [("env.kubernetes_version", "1.19.16")], "env.kubernetes_version", "does not support"),
    ("malformed-version", [("env.kubernetes_version", "latest")], "env.kubernetes_version", "not a version x.y.z"),
    ("version-two-parts", [("env.kubernetes_version", "1.37")], "env.kubernetes_version", "not a version x.y.z"),
    ("bgp-options-in-vxlan", [("env.network.calico.bgp", {"as_number": 64512})], "env.network.calico.bgp", "mode is 'vxlan'"),
    (
        "bgp-as-range",
        [("env.network.calico.mode", "bgp"), ("env.network.calico.bgp", {"as_number": 0})],
        "env.network.calico.bgp.as_number",
        "1 to 4294967295",
    ),
    (
        "bgp-peer-address",
        [("env.network.calico.mode", "bgp"), ("env.network.calico.bgp", {"peers": [{"address": "router", "as_number": 65000}]})],
        "env.network.calico.bgp.peers[0].address",
        "not a valid IP address",
    ),
    ("bundle-url-ftp", [("env.bundle.url", "ftp://10.77.0.1/")], "env.bundle.url", "not an http(s) URL"),
    ("bundle-url-no-scheme", [("env.bundle.url", "10.77.0.1:8080")], "env.bundle.url", "not an http(s) URL"),
    ("registry-with-scheme", [("env.bundle.registry", "https://10.77.0.1:5000")], "env.bundle.registry", "not host:port"),
    ("ssh-user-bad", [("env.ssh.user", "Root User")], "env.ssh.user", "wrong form"),
    ("cluster-domain-bad", [("env.cluster_domain", "Cluster_Local")], "env.cluster_domain", "wrong form"),
    (
        "taint-effect",
        [("inventory.nodes[3].taints", [{"key": "gpu", "effect": "NoRun"}])],
        "inventory.nodes[3].taints[0].effect",
        "NoSchedule, PreferNoSchedule or NoExecute",
    ),
    (
        "taint-missing-key",
        [("inventory.nodes[3].taints", [{"effect": "NoSchedule"}])],
        "inventory.nodes[3].taints[0].key",
        "is required",
    ),
    ("patch-target", [("env.kubeadm", {"patches": {"etcd": [{}]}})], "env.kubeadm.patches.etcd", "kube-apiserver"),
    (
        "extra-args-component",
        [("env.kubeadm", {"extra_args": {"api_server": {}}})],
        "env.kubeadm.extra_args.api_server",
        "did you mean 'apiserver'",
    ),
    (
        "extra-args-value-type",
        [("env.kubeadm", {"extra_args": {"apiserver": {"v": ["2"]}}})],
        "env.kubeadm.extra_args.apiserver.v",
        "string",
    ),
    (
        "host-key-fingerprint-form",
        [("inventory.nodes[0].host_key_fingerprint", "MD5:ab:cd")],
        "inventory.nodes[0].host_key_fingerprint",
        "SHA256",
    ),
    ("docker-on-current-kubernetes", [("env.runtime", "docker")], "env.runtime", "needs cri-dockerd"),
    ("node-named-deploy", [("inventory.nodes[3].name", "deploy")], "inventory.nodes[3].name", "deploy node's name"),
    ("empty-inventory", [("inventory.nodes", [])], "inventory.nodes", "is empty"),
    ("control-without-agent", [("env.day2", {"agent": False, "control": True})], "env.day2.control",
     "env.day2.agent is false"),
]


@pytest.mark.parametrize("changes, path, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_names_the_field(changes, path, fragment):
    data = copy.deepcopy(BASE)
    for change_path, value in changes:
        mutate(data, change_path, value)
    problems = brine_pillar.validate(data, folder_name="demo")
    by_path = {p.path: p for p in problems}
    assert path in by_path, f"no problem at {path}; got: {[str(p) for p in problems]}"
    assert fragment in str(by_path[path]), str(by_path[path])
    line = str(by_path[path])
    assert line.startswith(f"{path}: ") and line.endswith(")"), line


def test_case_table_is_large_enough():
    assert len(CASES) >= 40


def test_an_even_number_of_etcd_members_is_a_warning_not_a_problem():
    # Removing one of three masters passes through two members: allowed, said.
    data = copy.deepcopy(BASE)
    mutate(data, "inventory.nodes[2].roles", ["master"])
    assert brine_pillar.validate(data, folder_name="demo") == []
    (line,) = brine_pillar.warnings(data)
    assert line.startswith("inventory.nodes: 2 nodes have the role etcd, an even number (warning")
    assert brine_pillar.warnings(BASE) == []


def test_every_problem_is_reported_at_once():
    data = copy.deepcopy(BASE)
    for change_path, value in [
        ("env.runtime", "crio"),
        ("env.networks.pod", "10.96.0.0/12"),
        ("inventory.nodes[1].address", "10.99.0.1"),
        ("env.ssh.jump_host", "bastion"),
        ("env.bundle.url", "file:///bundle"),
        ("inventory.nodes[3].name", "Worker1"),
    ]:
        mutate(data, change_path, value)
    paths = [p.path for p in brine_pillar.validate(data, folder_name="demo")]
    assert paths == sorted(paths)
    assert set(paths) >= {
        "env.runtime",
        "env.networks.pod",
        "inventory.nodes[1].address",
        "env.ssh.jump_host",
        "env.bundle.url",
        "inventory.nodes[3].name",
    }


def test_base_pillar_is_valid():
    assert brine_pillar.validate(copy.deepcopy(BASE), folder_name="demo") == []


@pytest.mark.parametrize("cluster", ["demo", "example"])
def test_shipped_clusters_are_valid(cluster):
    assert brine_pillar.validate(load_cluster(cluster), folder_name=cluster) == []


def test_defaults_are_filled_in():
    data = copy.deepcopy(BASE)
    for key in ("runtime", "network", "kube_proxy"):
        del data["env"][key]
    parsed = brine_pillar.parse(data).model_dump(mode="json")
    assert parsed["env"]["runtime"] == "containerd"
    assert parsed["env"]["network"] == {"plugin": "calico", "calico": {"mode": "vxlan", "bgp": None}}
    assert parsed["env"]["kube_proxy"]["mode"] == "ipvs"
    assert parsed["env"]["api_port"] == 6443
    assert parsed["env"]["ssh"]["port"] == 22


def test_not_a_mapping():
    assert [p.path for p in brine_pillar.validate(["env"])] == ["(pillar)"]


def test_docs_reference_is_current():
    with open(os.path.join(REPO_ROOT, "docs", "pillar.md"), encoding="utf-8") as handle:
        assert handle.read() == brine_pillar.reference_markdown(), "docs/pillar.md is stale: run make docs"
