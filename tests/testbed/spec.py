"""What a testbed cluster is made of: its pillar, read as plain YAML, and the names
of every host-side object (bridge, network namespaces, veths, cgroups, paths) it owns.

All names derive from the cluster name alone, so that a cluster's leftovers can be
found and removed without its pillar or its state file.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

STATE_ROOT = Path("/var/lib/brine-testbed")
"""Per-cluster state: overlays, logs, known_hosts, state.json."""

BUNDLE_DROP = Path("/var/cache/brine/bundles")
"""Bundles put here are on every deploy machine at ``/srv/brine/incoming`` (read-only),
as a user would carry one onto a deploy node."""

DEPLOY_MACHINE = "deploy"
"""The deploy node's machine: not in the inventory, at the address of ``env.bundle.url``."""

LOCK_DIR = Path("/run/brine-testbed")
"""One lock file per cluster, on a tmpfs."""

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_DIR = "brine-testbed"
"""Each node's cgroup is ``<hierarchy>/brine-testbed/<cluster>/<node>``."""

IFNAMSIZ = 15
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_MACHINE_NAME_MAX = 64


class SpecError(ValueError):
    """The pillar does not describe a cluster the testbed can build."""


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(f"{kind} {name!r}: must be lower-case letters, digits and inner dashes")
    return name


def cluster_tag(cluster: str) -> str:
    """A short, fixed-length tag of the cluster for interface names."""
    return hashlib.sha256(cluster.encode()).hexdigest()[:6]


def bridge_name(cluster: str) -> str:
    """The cluster's bridge: ``brt-<cluster>``, or ``brt-<tag>`` when that is too long."""
    name = f"brt-{cluster}"
    return name if len(name) <= IFNAMSIZ else f"brt-{cluster_tag(cluster)}"


def veth_name(cluster: str, index: int) -> str:
    """Host end of node number ``index``'s veth pair (its other end is ``eth0``)."""
    return f"btv{cluster_tag(cluster)}n{index}"


def veth_pattern(cluster: str) -> re.Pattern[str]:
    """Matches the host ends of every veth of the cluster."""
    return re.compile(rf"^btv{cluster_tag(cluster)}n\d+$")


def netns_name(cluster: str, node: str) -> str:
    """The node's network namespace (also its nspawn machine name).

    Names contain no dot, so ``brt-<cluster>.`` prefixes exactly one cluster's.
    """
    return f"{netns_prefix(cluster)}{node}"


def netns_prefix(cluster: str) -> str:
    """Every network namespace of the cluster starts with this."""
    return f"brt-{cluster}."


def state_dir(cluster: str) -> Path:
    """Everything the cluster keeps on the host's disk, removed by ``down``."""
    return STATE_ROOT / cluster


def lock_path(cluster: str) -> Path:
    """Serialises ``up``/``down`` of one cluster (outside the state dir, which goes)."""
    return LOCK_DIR / f"{cluster}.lock"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the inventory."""

    name: str
    address: str
    roles: tuple[str, ...]
    index: int

    def as_dict(self) -> dict[str, object]:
        """The node as the inventory gives it."""
        return {"name": self.name, "address": self.address, "roles": list(self.roles)}


@dataclass(frozen=True)
class ClusterSpec:
    """A cluster as the testbed needs it.

    ``nodes`` are the inventory's; ``deploy`` is the deploy node's machine (serving the
    bundle at ``deploy_address``); this machine, where salt-ssh runs, joins the bridge
    at ``host_address``.
    """

    name: str
    network: ipaddress.IPv4Network
    deploy_address: str
    host_address: str
    jump_host: str
    ssh_user: str
    private_key: Path
    nodes: tuple[NodeSpec, ...]

    @property
    def deploy(self) -> NodeSpec:
        """The deploy node's machine."""
        return NodeSpec(DEPLOY_MACHINE, self.deploy_address, ("deploy",), len(self.nodes))

    @property
    def machines(self) -> tuple[NodeSpec, ...]:
        """Every container the testbed runs: the inventory's nodes and the deploy node."""
        return (*self.nodes, self.deploy)

    @property
    def prefixlen(self) -> int:
        """The node network's prefix length."""
        return self.network.prefixlen

    def node(self, name: str) -> NodeSpec:
        """The node (or the deploy machine) called ``name``."""
        for node in self.machines:
            if node.name == name:
                return node
        raise KeyError(f"cluster {self.name} has no node {name!r}")


def _get(data: dict, path: str) -> object:
    value: object = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise SpecError(f"{path}: missing")
        value = value[key]
    return value


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: not a mapping")
    return data


def load_spec(cluster: str, pillar_dir: Path, repo_root: Path) -> ClusterSpec:
    """Read ``env.sls`` and ``inventory.sls`` from ``pillar_dir`` and check them.

    ``env.ssh.private_key`` is taken relative to ``repo_root`` unless absolute.
    """
    _check_name("cluster", cluster)
    env = _read_yaml(pillar_dir / "env.sls")
    inventory = _read_yaml(pillar_dir / "inventory.sls")
    try:
        network = ipaddress.IPv4Network(str(_get(env, "env.networks.node")))
    except ValueError as exc:
        raise SpecError(f"env.networks.node: {exc}") from exc
    deploy_host = urlsplit(str(_get(env, "env.bundle.url"))).hostname or ""
    try:
        deploy = ipaddress.IPv4Address(deploy_host)
    except ValueError as exc:
        raise SpecError(f"env.bundle.url: host {deploy_host!r} is not an IPv4 address") from exc
    if deploy not in network:
        raise SpecError(f"env.bundle.url: {deploy} is outside env.networks.node {network}")

    raw_nodes = _get(inventory, "inventory.nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SpecError("inventory.nodes: must be a non-empty list")
    nodes = []
    seen: set[str] = {str(deploy)}
    for index, raw in enumerate(raw_nodes):
        if not isinstance(raw, dict):
            raise SpecError(f"inventory.nodes[{index}]: not a mapping")
        name = _check_name("node", raw.get("name"))
        if name == DEPLOY_MACHINE:
            raise SpecError(f"node {name}: the name is the deploy node's")
        if len(netns_name(cluster, name)) > _MACHINE_NAME_MAX:
            raise SpecError(f"node {name}: cluster and node names are too long together")
        try:
            address = ipaddress.IPv4Address(str(raw.get("address")))
        except ValueError as exc:
            raise SpecError(f"node {name}: {exc}") from exc
        if address not in network or address in (network.network_address, network.broadcast_address):
            raise SpecError(f"node {name}: address {address} is not a host of {network}")
        for key in (name, str(address)):
            if key in seen:
                raise SpecError(f"node {name}: {key} is used twice (or is the deploy address)")
            seen.add(key)
        nodes.append(NodeSpec(name, str(address), tuple(raw.get("roles") or ()), index))

    jump_host = str(_get(env, "env.ssh.jump_host"))
    if jump_host not in {node.name for node in nodes}:
        raise SpecError(f"env.ssh.jump_host: {jump_host!r} is not a node")
    key = Path(str(_get(env, "env.ssh.private_key")))
    free = [host for host in reversed(list(network.hosts())[-16:]) if str(host) not in seen]
    if not free:
        raise SpecError(f"env.networks.node: none of the last 16 addresses of {network} is free for this machine")
    return ClusterSpec(
        name=cluster,
        network=network,
        deploy_address=str(deploy),
        host_address=str(free[0]),
        jump_host=jump_host,
        ssh_user=str(_get(env, "env.ssh.user")),
        private_key=key if key.is_absolute() else repo_root / key,
        nodes=tuple(nodes),
    )
