"""
The cluster pillar: its schema, its defaults, and the validator.

A cluster lives in ``pillar/clusters/<name>/`` as two files, after the seed's
``env`` and ``inventory``:

- ``env.sls``       -> pillar key ``env``: cluster-wide settings;
- ``inventory.sls`` -> pillar key ``inventory``: the nodes.

:func:`validate` checks both and returns *every* problem at once, each naming
the field path, what is wrong and what would be accepted, so a user fixes a
pillar in one pass. The schema is pydantic (``extra="forbid"`` catches typos);
cross-field rules (networks, roles, jump host...) run on the raw data so they
still report when another part of the pillar is broken.

Every field's ``description`` is the "what is accepted" text of its errors and
the source of ``docs/pillar.md``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import brine_versions
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

RFC1123_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RFC1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)
LABEL_ACCEPTED = "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters (RFC 1123)"
#: The deploy node (it serves env.bundle) is the salt-ssh target ``deploy.<cluster>``.
DEPLOY_NODE = "deploy"
KUBEADM_PATCH_TARGETS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubeletconfiguration",
    "corednsdeployment",
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a cluster's pillar."""

    path: str
    message: str
    accepted: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} ({self.accepted})"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True)


def _check_label(value: str) -> str:
    if not RFC1123_LABEL.match(value):
        raise ValueError(f"'{value}' is not a valid name")
    return value


Label = Annotated[str, Field(description=LABEL_ACCEPTED)]
Role = Literal["master", "worker", "etcd"]


class Taint(_Strict):
    key: str = Field(description="a taint key such as dedicated or example.com/gpu")
    value: str = Field("", description="the taint's value (optional)")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        description="NoSchedule, PreferNoSchedule or NoExecute"
    )


class Node(_Strict):
    name: Label = Field(description=f"the node's hostname and Kubernetes node name: {LABEL_ACCEPTED}")
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(
        description="the node's IP address inside env.networks.node, e.g. 10.0.0.11"
    )
    roles: list[Role] = Field(
        min_length=1,
        description="a non-empty list of master, worker and etcd; etcd members are usually the masters",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels put on the node")
    taints: list[Taint] = Field(default_factory=list, description="Kubernetes taints put on the node")
    host_key_fingerprint: str | None = Field(
        None,
        pattern=r"^SHA256:[A-Za-z0-9+/]{43}$",
        description="the node's SSH host key fingerprint as `ssh-keygen -lf` prints it (SHA256:...); "
        "when given, cluster.trust accepts only that key",
    )
    minion_fingerprint: str | None = Field(
        None,
        pattern=r"^([0-9a-f]{2}:){31}[0-9a-f]{2}$",
        description="the sha256 fingerprint of the node's own salt-minion key, as "
        "`salt-call --local key.finger hash_type=sha256` prints it; needed only for a node that "
        "joins by starting a minion it made its own key for (cluster.deploy gives every other node its key)",
    )

    _name_is_label = field_validator("name")(_check_label)


class Inventory(_Strict):
    nodes: list[Node] = Field(min_length=1, description="the cluster's nodes, at least one master")


class Calico(_Strict):
    mode: Literal["vxlan", "bgp"] = Field("vxlan", description="vxlan (default; works on any L3 network) or bgp")
    bgp: CalicoBGP | None = Field(None, description="BGP settings; only in mode bgp")


class CalicoBGPPeer(_Strict):
    address: ipaddress.IPv4Address | ipaddress.IPv6Address = Field(description="the peer router's IP address")
    as_number: int = Field(ge=1, le=4294967295, description="the peer's AS number, 1 to 4294967295")


class CalicoBGP(_Strict):
    as_number: int = Field(64512, ge=1, le=4294967295, description="the cluster's AS number, 1 to 4294967295")
    peers: list[CalicoBGPPeer] = Field(default_factory=list, description="external BGP peers (top-of-rack routers)")


class Network(_Strict):
    plugin: Literal["calico", "host-gw"] = Field(
        "calico",
        description="calico (default) or host-gw (CNI bridge plus routes between nodes; nodes must share one L2 network)",
    )
    calico: Calico = Field(default_factory=Calico, description="Calico settings")


class KubeProxy(_Strict):
    mode: Literal["ipvs", "iptables"] = Field("ipvs", description="ipvs (default) or iptables")


class Networks(_Strict):
    node: ipaddress.IPv4Network | ipaddress.IPv6Network = Field(
        description="the network every node address is in, as a CIDR such as 10.0.0.0/24"
    )
    pod: ipaddress.IPv4Network | ipaddress.IPv6Network = Field(
        ipaddress.IPv4Network("10.244.0.0/16"), description="the pod network as a CIDR (default 10.244.0.0/16)"
    )
    service: ipaddress.IPv4Network | ipaddress.IPv6Network = Field(
        ipaddress.IPv4Network("10.96.0.0/12"), description="the service network as a CIDR (default 10.96.0.0/12)"
    )


class Bundle(_Strict):
    url: str = Field(
        description="the deploy node's file server as an http:// or https:// URL, e.g. http://10.0.0.2:8080/"
    )
    registry: str = Field(description="the deploy node's image registry as host:port, e.g. 10.0.0.2:5000")
    file: str = Field(
        "",
        pattern=r"^(/.+)?$",
        description="absolute path of the bundle tar on the deploy node "
        "(default /srv/brine/incoming/brine-<major.minor>-amd64.tar, the release line of env.kubernetes_version)",
    )


class SSH(_Strict):
    jump_host: Label = Field(description="the name of the one inventory node the deploy node can reach by SSH")
    user: str = Field("root", pattern=r"^[a-z_][a-z0-9_-]*$", description="the SSH login user on every node")
    private_key: str = Field(
        description="path of the SSH private key on the deploy node (relative paths start at the repository root)"
    )
    port: int = Field(22, ge=1, le=65535, description="the SSH port on every node, 1 to 65535")


class KubeadmExtraArgs(_Strict):
    apiserver: dict[str, str] = Field(default_factory=dict, description="extra kube-apiserver flags, name: value")
    controller_manager: dict[str, str] = Field(
        default_factory=dict, description="extra kube-controller-manager flags, name: value"
    )
    scheduler: dict[str, str] = Field(default_factory=dict, description="extra kube-scheduler flags, name: value")
    kubelet: dict[str, str] = Field(default_factory=dict, description="extra kubelet flags, name: value")


class Kubeadm(_Strict):
    extra_args: KubeadmExtraArgs = Field(
        default_factory=KubeadmExtraArgs, description="flags kubeadm passes to each component"
    )
    patches: dict[
        Literal[
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kubeletconfiguration",
            "corednsdeployment",
        ],
        list[dict[str, Any]],
    ] = Field(
        default_factory=dict,
        description="strategic-merge patches for settings kubeadm does not expose, by target: "
        + ", ".join(KUBEADM_PATCH_TARGETS),
    )


class Day2(_Strict):
    agent: bool = Field(
        True,
        description="salt-master on the masters and salt-minion on every node, so the cluster onboards, "
        "removes and corrects its own nodes (true, default); false: the cluster is managed from the deploy node only",
    )
    highstate_minutes: int = Field(
        30, ge=0, le=10080,
        description="how often every node runs its highstate to find and put back drift, in minutes "
        "(default 30; 0: never on a schedule)",
    )
    report_only: bool = Field(
        False,
        description="true: the scheduled highstate only reports drift (test=True) and changes nothing; "
        "false (default): it puts every drifted setting back",
    )
    control: bool = Field(
        False,
        description="true: this is the control cluster - its masters also hold every other cluster declared "
        "beside it (pillar, secrets, SSH key, known_hosts) and deploy them over salt-ssh (salt-run "
        "state.orchestrate cluster.deploy on a master); false (default): its masters hold its own pillar only",
    )
    cert_warn_days: int = Field(
        30, ge=1, le=365,
        description="a daily check on every node warns (event brine/certs/expiring, cluster.status) when a "
        "Kubernetes or etcd certificate has fewer days left than this (default 30)",
    )


class Upgrade(_Strict):
    worker_batch: int = Field(
        1, ge=1, le=1000,
        description="cluster.upgrade drains and upgrades this many workers at a time (default 1; the masters "
        "always go one at a time)",
    )
    drain_seconds: int = Field(
        300, ge=30, le=86400,
        description="how long cluster.upgrade waits for a node's pods to leave (PodDisruptionBudgets obeyed) "
        "before it fails that node (default 300)",
    )


class Env(_Strict):
    name: Label = Field(description=f"the cluster's name, equal to its folder under pillar/clusters/: {LABEL_ACCEPTED}")
    kubernetes_version: str = Field(
        description="a Kubernetes version x.y.z of a supported release line: "
        + ", ".join(brine_versions.SUPPORTED_RELEASE_LINES)
    )
    runtime: Literal["containerd", "docker"] = Field("containerd", description="containerd (default) or docker")
    network: Network = Field(default_factory=Network, description="the pod network plugin")
    kube_proxy: KubeProxy = Field(default_factory=KubeProxy, description="kube-proxy settings")
    networks: Networks = Field(description="node, pod and service networks")
    cluster_domain: str = Field(
        "cluster.local",
        pattern=RFC1123_SUBDOMAIN.pattern,
        description="the cluster's DNS domain, e.g. cluster.local (RFC 1123 subdomain)",
    )
    api_port: int = Field(6443, ge=1, le=65535, description="the API servers' port, 1 to 65535 (default 6443)")
    bundle: Bundle = Field(description="where nodes fetch every artifact: the deploy node's services")
    ssh: SSH = Field(description="how the deploy node reaches the nodes")
    kubeadm: Kubeadm = Field(default_factory=Kubeadm, description="kubeadm settings")
    coredns: bool = Field(True, description="deploy CoreDNS, kubeadm's DNS addon (true, default); false: no cluster DNS")
    upstream_dns: list[ipaddress.IPv4Address | ipaddress.IPv6Address] | None = Field(
        None,
        description="name servers CoreDNS forwards non-cluster names to; unset (default): each node's "
        "/etc/resolv.conf, as kubeadm does; []: none, CoreDNS answers cluster names only (a site without DNS)",
    )
    day2: Day2 = Field(default_factory=Day2, description="the day-2 agent: onboarding, drift correction, removal")
    upgrade: Upgrade = Field(default_factory=Upgrade, description="how cluster.upgrade moves the cluster to a new "
                             "env.kubernetes_version")

    _name_is_label = field_validator("name")(_check_label)


class ClusterPillar(_Strict):
    env: Env = Field(description="cluster-wide settings (env.sls)")
    inventory: Inventory = Field(description="the nodes (inventory.sls)")


# Calico is declared before the BGP models it refers to.
Calico.model_rebuild()


# --------------------------------------------------------------------------
# Turning pydantic's errors into Brine's one-line problems
# --------------------------------------------------------------------------


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _models_in(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, with Annotated and unions unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _models_in(arg)]
    return [annotation]


def _step(annotation: Any, part: Any) -> tuple[Any, Any]:
    """Follow one error-location part into an annotation: (field info or None, inner annotation)."""
    for candidate in _models_in(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            field = candidate.model_fields.get(part) if isinstance(part, str) else None
            return field, (field.annotation if field is not None else None)
        origin = typing.get_origin(candidate)
        if origin is list and isinstance(part, int):
            return None, typing.get_args(candidate)[0]
        if origin is dict:
            return None, typing.get_args(candidate)[1]
    return None, None


def _field_at(loc: tuple[Any, ...]) -> Any:
    """The pydantic field info an error location points at, or None."""
    annotation: Any = ClusterPillar
    field = None
    for part in loc:
        field, annotation = _step(annotation, part)
        if annotation is None:
            return None
    return field


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose keys live at an error location, or None."""
    annotation: Any = ClusterPillar
    for part in loc:
        _, annotation = _step(annotation, part)
        if annotation is None:
            return None
    for candidate in _models_in(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _accepted(loc: tuple[Any, ...], fallback: str) -> str:
    field = _field_at(loc)
    if field is not None and field.description:
        return field.description
    return fallback


def _unknown_key_problem(loc: tuple[Any, ...]) -> Problem:
    parent_loc, key = loc[:-1], str(loc[-1])
    model = _model_at(parent_loc)
    known = sorted(model.model_fields) if model is not None else []
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return Problem(
        _path(loc),
        f"unknown key '{key}'",
        f"{hint}known keys here: {', '.join(known)}" if known else "remove it",
    )


def _describe_input(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _problems_from(error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        # Unions report one error per member type; the field path without the
        # member name is what the user wrote.
        loc = tuple(p for p in loc if not (isinstance(p, str) and ("IPv" in p or p.startswith("function-"))))
        kind = item["type"]
        if "[key]" in loc:  # a mapping's key, not its value, is wrong
            loc = tuple(p for p in loc if p != "[key]")
            problems.append(Problem(_path(loc), f"'{loc[-1]}' is not an accepted key", _accepted(loc[:-1], item["msg"])))
            continue
        if kind == "extra_forbidden":
            problems.append(_unknown_key_problem(loc))
            continue
        if kind == "missing":
            problems.append(Problem(_path(loc), "is required but missing", _accepted(loc, "add it")))
            continue
        value = _describe_input(item.get("input"))
        if kind in ("literal_error", "enum"):
            message = f"{value} is not one of the choices"
        elif kind.startswith("ip_") or kind in ("ip_v4_network", "ip_v6_network"):
            message = f"{value} is not a valid {'network (CIDR)' if 'network' in kind else 'IP address'}"
        elif kind == "value_error":
            message = item["msg"].removeprefix("Value error, ")
        elif kind == "string_pattern_mismatch":
            message = f"{value} has the wrong form"
        elif kind in ("too_short",):
            message = "is empty"
        else:
            message = f"{value}: {item['msg'][0].lower()}{item['msg'][1:]}"
        problems.append(Problem(_path(loc), message, _accepted(loc, item["msg"])))
    # A union of IPv4/IPv6 reports the same field twice; keep one line per path.
    unique: dict[str, Problem] = {}
    for problem in problems:
        unique.setdefault(problem.path, problem)
    return list(unique.values())


# --------------------------------------------------------------------------
# Cross-field rules, on the raw data so they report even when parts are broken
# --------------------------------------------------------------------------


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _network(value: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=True) if value is not None else None
    except ValueError:
        return None


def _address(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(value)) if value is not None else None
    except ValueError:
        return None


def _nodes(data: Any) -> list[tuple[int, dict[str, Any]]]:
    nodes = _get(data, "inventory", "nodes")
    if not isinstance(nodes, list):
        return []
    return [(i, n) for i, n in enumerate(nodes) if isinstance(n, dict)]


def _cross_field_problems(data: dict[str, Any], folder_name: str | None) -> list[Problem]:
    problems: list[Problem] = []
    env = _get(data, "env") or {}
    nodes = _nodes(data)

    name = _get(env, "name")
    if folder_name is not None and isinstance(name, str) and name != folder_name:
        problems.append(
            Problem("env.name", f"'{name}' differs from the cluster's folder '{folder_name}'",
                    f"the folder name, '{folder_name}', or rename the folder")
        )

    if _get(env, "day2", "control") is True and _get(env, "day2", "agent") is False:
        problems.append(Problem("env.day2.control", "is true but env.day2.agent is false: a control cluster deploys "
                                "the others from its masters' salt-master, which the agent installs",
                                "env.day2.agent: true, or env.day2.control: false"))

    version = _get(env, "kubernetes_version")
    if version is not None:
        lines = ", ".join(brine_versions.SUPPORTED_RELEASE_LINES)
        if brine_versions.parse_kubernetes_version(str(version)) is None:
            problems.append(Problem("env.kubernetes_version", f"'{version}' is not a version x.y.z",
                                    f"a version such as 1.37.2 of a supported line: {lines}"))
        elif not brine_versions.is_supported(str(version)):
            problems.append(Problem("env.kubernetes_version",
                                    f"'{version}' is of release line {brine_versions.release_line(str(version))}, "
                                    "which Brine does not support",
                                    f"a version of {lines}"))

    parsed_version = brine_versions.parse_kubernetes_version(str(version)) if version is not None else None
    if _get(env, "runtime") == "docker" and parsed_version and parsed_version[:2] >= (1, 24):
        problems.append(Problem("env.runtime", f"docker cannot run Kubernetes {version}: from 1.24 on, kubelet needs "
                                "cri-dockerd for Docker, and no Brine bundle carries it",
                                "containerd, or docker with Kubernetes 1.20"))

    networks = {key: _network(_get(env, "networks", key)) for key in ("node", "pod", "service")}
    if _get(env, "networks") is not None:
        defaults = Networks.model_fields
        for key in ("pod", "service"):
            if _get(env, "networks", key) is None:
                networks[key] = defaults[key].default
    for first, second in (("pod", "service"), ("pod", "node"), ("service", "node")):
        a, b = networks[first], networks[second]
        if a is not None and b is not None and a.version == b.version and a.overlaps(b):
            problems.append(Problem(f"env.networks.{first}", f"{a} overlaps env.networks.{second} {b}",
                                    "node, pod and service networks that share no address"))

    bundle_url = _get(env, "bundle", "url")
    if isinstance(bundle_url, str):
        parts = urlsplit(bundle_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(Problem("env.bundle.url", f"'{bundle_url}' is not an http(s) URL",
                                    "an http:// or https:// URL of the deploy node's file server, e.g. http://10.0.0.2:8080/"))
    registry = _get(env, "bundle", "registry")
    if isinstance(registry, str) and not re.match(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:]+\](:\d{1,5})?$", registry):
        problems.append(Problem("env.bundle.registry", f"'{registry}' is not host:port",
                                "the registry as host:port with no scheme or path, e.g. 10.0.0.2:5000"))

    calico = _get(env, "network", "calico")
    mode = _get(calico, "mode") or "vxlan"
    if isinstance(calico, dict) and calico.get("bgp") is not None and mode != "bgp":
        problems.append(Problem("env.network.calico.bgp", f"BGP settings are set but the mode is '{mode}'",
                                "remove env.network.calico.bgp, or set env.network.calico.mode: bgp"))

    seen_names: dict[str, int] = {}
    seen_addresses: dict[str, int] = {}
    node_network = networks["node"]
    masters = 0
    etcd_members = 0
    for index, node in nodes:
        node_name = node.get("name")
        where = f"inventory.nodes[{index}]"
        if node_name == DEPLOY_NODE:
            problems.append(Problem(f"{where}.name", f"'{DEPLOY_NODE}' is the deploy node's name (salt-ssh target "
                                    f"{DEPLOY_NODE}.<cluster>)", "another name"))
        if isinstance(node_name, str):
            if node_name in seen_names:
                first = seen_names[node_name]
                problems.append(Problem(f"{where}.name", f"'{node_name}' is already the name of inventory.nodes[{first}]",
                                        "a name used by one node only"))
            else:
                seen_names[node_name] = index
        address = _address(node.get("address"))
        if address is not None:
            key = str(address)
            if key in seen_addresses:
                first = seen_addresses[key]
                problems.append(Problem(f"{where}.address", f"{key} is already the address of inventory.nodes[{first}]",
                                        "an address used by one node only"))
            else:
                seen_addresses[key] = index
            if node_network is not None and (address.version != node_network.version or address not in node_network):
                problems.append(Problem(f"{where}.address", f"{address} is outside env.networks.node {node_network}",
                                        f"an address inside {node_network}, or widen env.networks.node"))
        roles = node.get("roles")
        if isinstance(roles, list):
            masters += "master" in roles
            etcd_members += "etcd" in roles
            if len(set(map(str, roles))) != len(roles):
                problems.append(Problem(f"{where}.roles", "lists a role twice", "each of master, worker, etcd at most once"))

    if nodes and isinstance(_get(data, "inventory", "nodes"), list):
        if masters == 0:
            problems.append(Problem("inventory.nodes", "no node has the role master",
                                    "at least one node with roles: [master, ...]; 3 for high availability"))
        if etcd_members == 0:
            problems.append(Problem("inventory.nodes", "no node has the role etcd",
                                    "an odd number (1, 3 or 5) of nodes with the role etcd, usually the masters"))

    jump = _get(env, "ssh", "jump_host")
    if isinstance(jump, str) and seen_names and jump not in seen_names:
        close = difflib.get_close_matches(jump, list(seen_names), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        problems.append(Problem("env.ssh.jump_host", f"'{jump}' is not a node of the inventory",
                                f"{hint}the name of one node in inventory.nodes: {', '.join(seen_names)}"))
    return problems


def validate(data: Any, folder_name: str | None = None) -> list[Problem]:
    """
    Check a cluster's merged pillar (``{"env": ..., "inventory": ...}``).

    Returns every problem found, sorted by field path; an empty list means valid.
    ``folder_name`` is the cluster's folder under ``pillar/clusters/``, which
    ``env.name`` must equal.
    """
    if not isinstance(data, dict):
        return [Problem("(pillar)", f"is {type(data).__name__}, not a mapping", "env.sls and inventory.sls holding mappings")]
    problems: list[Problem] = []
    try:
        ClusterPillar.model_validate(data)
    except ValidationError as error:
        problems.extend(_problems_from(error))
    reported = {p.path for p in problems}
    problems.extend(p for p in _cross_field_problems(data, folder_name) if p.path not in reported)
    return sorted(set(problems), key=lambda p: (p.path, p.message))


def warnings(data: Any) -> list[str]:
    """
    What is allowed but unwise in a valid pillar, one line each: an even number
    of etcd members (a majority of 2 or 4 survives no more failures than 1 or 3
    do; a state passed through while a member is replaced).
    """
    nodes = _get(data, "inventory", "nodes")
    if not isinstance(nodes, list):
        return []
    etcd = sum(1 for node in nodes if isinstance(node, dict) and "etcd" in (node.get("roles") or []))
    if etcd and etcd % 2 == 0:
        return [f"inventory.nodes: {etcd} nodes have the role etcd, an even number (warning: an odd number - "
                "1, 3 or 5 - tolerates as many failures with one member fewer; fine while a member is replaced)"]
    return []


def parse(data: dict[str, Any]) -> ClusterPillar:
    """Return the validated pillar with every default filled in (raises ValidationError)."""
    return ClusterPillar.model_validate(data)


# --------------------------------------------------------------------------
# The reference of every key (docs/pillar.md is made from it: make docs)
# --------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        names = list(dict.fromkeys("IP address" if "Address" in n else "CIDR" if "Network" in n else n for n in names))
        return " or ".join(names) + (" (optional)" if type(None) in typing.get_args(annotation) else "")
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}"
    if origin is dict:
        key, value = typing.get_args(annotation)
        return f"mapping of {_type_name(key)} to {_type_name(value)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    names = {str: "string", int: "integer", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    return getattr(annotation, "__name__", str(annotation))


def _default_text(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        return "see below" if isinstance(value, BaseModel) else f"`{value!r}`".replace("`{}`", "`{}` (empty)")
    if field.default == "":
        return '`""` (empty)'
    return f"`{field.default}`" if field.default is not None else "none"


def _reference_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for key, field in model.model_fields.items():
        path = f"{prefix}.{key}" if prefix else key
        nested = None
        for candidate in _models_in(field.annotation):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                nested = (candidate, path)
            elif typing.get_origin(candidate) is list:
                inner = typing.get_args(candidate)[0]
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    nested = (inner, f"{path}[]")
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_name(field.annotation)} | {_default_text(field)} | {description} |")
        if nested:
            rows.extend(_reference_rows(*nested))
    return rows


def reference_markdown() -> str:
    """The pillar reference: every key with its type, default and meaning."""
    header = [
        "# Cluster pillar reference",
        "",
        "Made from the schema in `_utils/brine_pillar.py` by `make docs`; a test keeps it current.",
        "",
        "A cluster is the folder `pillar/clusters/<name>/` holding `env.sls` (key `env`, cluster-wide",
        "settings) and `inventory.sls` (key `inventory`, the nodes). `pillar/clusters/example/` uses",
        "every key. Check a cluster with `salt-run cluster.validate <name>`: it prints every problem",
        "at once, one per line, as `<field path>: <what is wrong> (<what is accepted>)`.",
        "",
        "Beyond each key's own form, the validator checks: pod, service and node networks do not",
        "overlap; every node address is inside `env.networks.node`; node names and addresses are",
        "unique; at least one node is a master; the etcd members are an odd number;",
        "`env.ssh.jump_host` is a node of the inventory; `env.name` equals the folder's name;",
        "`env.network.calico.bgp` is set only in mode `bgp`; `env.bundle.url` is http(s).",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    return "\n".join(header + _reference_rows(ClusterPillar, "")) + "\n"
