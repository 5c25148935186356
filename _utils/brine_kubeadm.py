"""
kubeadm's configuration for a node of a cluster, rendered from the cluster's
complete pillar (``env``, ``inventory``) for the cluster's Kubernetes version.

The API version follows the version kubeadm of that release reads:
``kubeadm.k8s.io/v1beta2`` (1.20-1.21), ``v1beta3`` (1.22-1.30), ``v1beta4``
(1.31+; component ``extraArgs`` become ``[{name, value}]`` lists there).

The shape Brine gives every cluster (docs/kubeadm.md says why):

- ``controlPlaneEndpoint: 127.0.0.1:<api_port>``: every node, masters included,
  reaches the API through its own nginx load balancer on 127.0.0.1 (the
  ``brine-api-lb`` static pod), whose upstreams are all masters; so kubelet,
  kube-proxy and admin.conf never depend on one master;
- each kube-apiserver binds its node's address only (a patch, since the bind
  address is per node), which leaves 127.0.0.1:<api_port> to the load balancer;
- external etcd over TLS with Brine's etcd certificates;
- images from the private registry (``imageRepository``), CoreDNS under
  ``<registry>/coredns``;
- joins discover the cluster through the first master's address with the
  bootstrap token and always pin the CA (``caCertHashes``);
- KubeletConfiguration: systemd cgroup driver, cluster DNS, and
  ``failCgroupV1: false`` from 1.35 on (cgroup v1 hosts keep working, with
  kubelet's warning); KubeProxyConfiguration: the env's mode and the pod CIDR.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import yaml

KUBEADM_GROUP = "kubeadm.k8s.io"
CRI_SOCKETS = {"containerd": "unix:///run/containerd/containerd.sock", "docker": "/var/run/dockershim.sock"}
PKI = "/etc/kubernetes/pki"
ETCD_CLIENT = {"caFile": f"{PKI}/etcd/ca.crt", "certFile": f"{PKI}/apiserver-etcd-client.crt",
               "keyFile": f"{PKI}/apiserver-etcd-client.key"}  # fmt: skip
PATCHES_DIR = "/etc/kubernetes/brine/patches"
#: Component flags by env.kubeadm.extra_args key.
COMPONENTS = {"apiserver": "apiServer", "controller_manager": "controllerManager", "scheduler": "scheduler"}


def minor(version: str) -> int:
    """13 for "1.13.2" or "v1.13.2"."""
    return int(version.lstrip("v").split(".")[1])


def api_version(kubernetes_version: str) -> str:
    """The kubeadm config API a release reads: v1beta2 (≤1.21), v1beta3 (≤1.30), v1beta4."""
    m = minor(kubernetes_version)
    if m <= 21:
        return f"{KUBEADM_GROUP}/v1beta2"
    if m <= 30:
        return f"{KUBEADM_GROUP}/v1beta3"
    return f"{KUBEADM_GROUP}/v1beta4"


def _args(flags: dict[str, str], api: str) -> Any:
    """Component flags in the API's shape: a map before v1beta4, a name/value list from it."""
    if api.endswith("v1beta4"):
        return [{"name": name, "value": str(value)} for name, value in sorted(flags.items())]
    return {name: str(value) for name, value in sorted(flags.items())}


def masters(inventory: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in inventory["nodes"] if "master" in n["roles"]]


def etcd_members(inventory: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in inventory["nodes"] if "etcd" in n["roles"]]


def _host(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"


def cluster_dns(env: dict[str, Any]) -> str:
    """The cluster DNS service's address: the tenth of the service network (kubeadm's choice)."""
    return str(ipaddress.ip_network(env["networks"]["service"])[10])


def cluster_configuration(env: dict[str, Any], inventory: dict[str, Any]) -> dict[str, Any]:
    api = api_version(env["kubernetes_version"])
    registry = env["bundle"]["registry"]
    sans = ["127.0.0.1", "localhost"]
    for node in masters(inventory):
        sans += [node["name"], str(node["address"])]
    extra = env["kubeadm"]["extra_args"]
    config: dict[str, Any] = {
        "apiVersion": api,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": "v" + env["kubernetes_version"].lstrip("v"),
        "clusterName": env["name"],
        "controlPlaneEndpoint": _host("127.0.0.1", env["api_port"]),
        "imageRepository": registry,
        "networking": {"podSubnet": str(env["networks"]["pod"]), "serviceSubnet": str(env["networks"]["service"]),
                       "dnsDomain": env["cluster_domain"]},
        "etcd": {"external": {"endpoints": [f"https://{_host(str(n['address']), 2379)}" for n in etcd_members(inventory)],
                              **ETCD_CLIENT}},
        "apiServer": {"certSANs": sans},
        "dns": {"imageRepository": f"{registry}/coredns"},
    }  # fmt: skip
    if api.endswith("v1beta2"):
        config["dns"]["type"] = "CoreDNS"
    if api.endswith("v1beta4") and not env.get("coredns", True):
        config["dns"]["disabled"] = True
    for key, component in COMPONENTS.items():
        if extra.get(key):
            config.setdefault(component, {})["extraArgs"] = _args(extra[key], api)
    return config


def kubelet_configuration(env: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "clusterDNS": [cluster_dns(env)],
        "clusterDomain": env["cluster_domain"],
        "resolvConf": "/etc/resolv.conf",
        "staticPodPath": "/etc/kubernetes/manifests",
        "rotateCertificates": True,
        "serverTLSBootstrap": False,
    }
    if minor(env["kubernetes_version"]) >= 35:
        config["failCgroupV1"] = False
    return config


def standalone_kubelet_configuration(env: dict[str, Any]) -> dict[str, Any]:
    """A kubelet that runs this node's static pods with no API (the load balancer before a join)."""
    config = kubelet_configuration(env)
    if env["runtime"] == "containerd" and minor(env["kubernetes_version"]) >= 27:
        config["containerRuntimeEndpoint"] = CRI_SOCKETS["containerd"]
    config.update(address="127.0.0.1", readOnlyPort=0, authentication={"anonymous": {"enabled": False},
                                                                         "webhook": {"enabled": False}},
                  authorization={"mode": "AlwaysAllow"})  # fmt: skip
    for key in ("clusterDNS", "clusterDomain", "rotateCertificates", "serverTLSBootstrap"):
        config.pop(key, None)
    return config


def standalone_kubelet_arguments(env: dict[str, Any]) -> list[str]:
    """kubelet's command-line arguments besides ``--config`` for the standalone kubelet:
    its container runtime, which kubelet before 1.27 does not take from its config."""
    if env["runtime"] != "containerd" or minor(env["kubernetes_version"]) >= 27:
        return []
    argv = [f"--container-runtime-endpoint={CRI_SOCKETS['containerd']}"]
    if minor(env["kubernetes_version"]) < 24:
        argv.insert(0, "--container-runtime=remote")
    return argv


def kube_proxy_configuration(env: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": env["kube_proxy"]["mode"],
        "clusterCIDR": str(env["networks"]["pod"]),
        # net.netfilter.nf_conntrack_max is the os step's (salt/os_base): kube-proxy leaves it
        # as it is instead of fighting it (and, where it is kernel-wide and read-only, failing).
        "conntrack": {"maxPerCore": 0},
    }


def _node_registration(env: dict[str, Any], node: dict[str, Any], api: str) -> dict[str, Any]:
    flags = {"node-ip": str(node["address"]), **env["kubeadm"]["extra_args"].get("kubelet", {})}
    labels = node.get("labels") or {}
    if labels:
        flags["node-labels"] = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
    registration: dict[str, Any] = {
        "name": node["name"],
        "criSocket": CRI_SOCKETS[env["runtime"]],
        "kubeletExtraArgs": _args(flags, api),
    }
    taints = [{"key": t["key"], "effect": t["effect"], **({"value": t["value"]} if t.get("value") else {})}
              for t in node.get("taints") or []]  # fmt: skip
    if "master" in node["roles"]:
        taints.insert(0, {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
        if minor(env["kubernetes_version"]) <= 23:
            taints[0]["key"] = "node-role.kubernetes.io/master"
    registration["taints"] = taints
    return registration


def _patches(api: str) -> dict[str, Any]:
    # v1beta2 has no patches field: `kubeadm ... --experimental-patches` carries it (see command()).
    return {} if api.endswith("v1beta2") else {"patches": {"directory": PATCHES_DIR}}


def init_configuration(env: dict[str, Any], node: dict[str, Any], token: str) -> dict[str, Any]:
    api = api_version(env["kubernetes_version"])
    return {
        "apiVersion": api,
        "kind": "InitConfiguration",
        "bootstrapTokens": [{"token": token, "ttl": "2h0m0s", "usages": ["signing", "authentication"],
                             "groups": ["system:bootstrappers:kubeadm:default-node-token"],
                             "description": "Brine's join token (cluster.deploy makes it valid again on every run)"}],
        "localAPIEndpoint": {"advertiseAddress": str(node["address"]), "bindPort": env["api_port"]},
        "nodeRegistration": _node_registration(env, node, api),
        **_patches(api),
    }  # fmt: skip


def join_configuration(env: dict[str, Any], inventory: dict[str, Any], node: dict[str, Any], token: str,
                       ca_cert_hash: str) -> dict[str, Any]:
    api = api_version(env["kubernetes_version"])
    first = masters(inventory)[0]
    config: dict[str, Any] = {
        "apiVersion": api,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": {"token": token, "apiServerEndpoint": _host(str(first["address"]), env["api_port"]),
                                         "caCertHashes": [ca_cert_hash]}},
        "nodeRegistration": _node_registration(env, node, api),
        **_patches(api),
    }  # fmt: skip
    if "master" in node["roles"]:
        config["controlPlane"] = {"localAPIEndpoint": {"advertiseAddress": str(node["address"]),
                                                       "bindPort": env["api_port"]}}  # fmt: skip
    return config


def documents(env: dict[str, Any], inventory: dict[str, Any], node: dict[str, Any], token: str,
              ca_cert_hash: str) -> list[dict[str, Any]]:
    """Every document of the node's kubeadm config: init for the first master, join for the others."""
    first = masters(inventory)[0]
    if node["name"] == first["name"]:
        head = init_configuration(env, node, token)
    else:
        head = join_configuration(env, inventory, node, token, ca_cert_hash)
    docs = [head, cluster_configuration(env, inventory), kubelet_configuration(env), kube_proxy_configuration(env)]
    if head["kind"] == "JoinConfiguration":
        docs = [head]  # a join takes the cluster's own configuration from the kubeadm-config ConfigMap
    return docs


def render(env: dict[str, Any], inventory: dict[str, Any], node: dict[str, Any], token: str, ca_cert_hash: str) -> str:
    """The node's kubeadm config file (YAML documents)."""
    docs = documents(env, inventory, node, token, ca_cert_hash)
    return "# Managed by Brine (salt://kubernetes): kubeadm's configuration of this node.\n" + yaml.safe_dump_all(
        docs, sort_keys=False, default_flow_style=False
    )


def patches(env: dict[str, Any], node: dict[str, Any]) -> dict[str, str]:
    """``{file name: content}`` of the node's kubeadm patches directory.

    Brine's own: on masters, kube-apiserver binds the node's address only (a JSON
    patch appending ``--bind-address``). Then env.kubeadm.patches, target by
    target, as strategic-merge patches applied in the order given.
    """
    files: dict[str, str] = {}
    if "master" in node["roles"]:
        files["kube-apiserver0+json.json"] = json.dumps(
            [{"op": "add", "path": "/spec/containers/0/command/-", "value": f"--bind-address={node['address']}"}]
        )
    for target, documents_ in sorted(env["kubeadm"].get("patches", {}).items()):
        for index, patch in enumerate(documents_, start=1):
            files[f"{target}{index}+strategic.json"] = json.dumps(patch, sort_keys=True)
    return files


def upgrade_ignored_checks(env: dict[str, Any], node: dict[str, Any]) -> list[str]:
    """
    The preflight checks ``kubeadm upgrade apply``/``node`` may skip on this node
    (``--ignore-preflight-errors``), for the same reasons as at init and join:
    SystemVerification refuses a cgroup v1 host from 1.35; ImagePull looks for the
    CoreDNS image on masters of a cluster deployed without CoreDNS.
    """
    ignored = []
    if minor(env["kubernetes_version"]) >= 35:
        ignored.append("SystemVerification")
    if "master" in node["roles"] and not env.get("coredns", True):
        ignored.append("ImagePull")
    return ignored


def command(env: dict[str, Any], node: dict[str, Any], inventory: dict[str, Any], config_path: str) -> list[str]:
    """The kubeadm command line that brings this node in (init on the first master, join on the rest)."""
    first = masters(inventory)[0]
    argv = ["kubeadm", "init" if node["name"] == first["name"] else "join", f"--config={config_path}"]
    api = api_version(env["kubernetes_version"])
    if api.endswith("v1beta2"):
        argv.append(f"--experimental-patches={PATCHES_DIR}")
    # Brine's load balancer manifest is already in /etc/kubernetes/manifests (kubeadm checks
    # that folder is empty on init, control-plane joins, and up to 1.3x on every join).
    ignored = ["DirAvailable--etc-kubernetes-manifests"]
    if "master" in node["roles"]:
        # On a joining master 127.0.0.1:<api_port> is already the load balancer's (the API
        # server binds the node's address). The bundle's etcd is Debian 12's 3.4.23; kubeadm
        # of recent releases wants a newer external etcd (1.37: 3.5.24) in preflight. The API
        # server works with it (it checks etcd's features itself); docs/kubeadm.md says so.
        ignored.append("ExternalEtcdVersion")
        if node["name"] != first["name"]:
            ignored.append(f"Port-{env['api_port']}")
        if not env.get("coredns", True):
            # kubeadm's preflight pulls the CoreDNS image even when its addon is skipped; the
            # bundle then carries none. The prefetch step has already put every image the
            # cluster runs on the node, verified.
            ignored.append("ImagePull")
    if minor(env["kubernetes_version"]) >= 35:
        # From 1.35 kubeadm's SystemVerification refuses a cgroup v1 host unless skipped, even
        # with failCgroupV1: false (set above). Brine's own preflight step checks the node's
        # cgroups and kernel modules and warns about cgroup v1.
        ignored.append("SystemVerification")
    argv.append("--ignore-preflight-errors=" + ",".join(ignored))
    if node["name"] == first["name"] and not env.get("coredns", True) and not api.endswith("v1beta4"):
        argv.append("--skip-phases=addon/coredns")
    return argv
