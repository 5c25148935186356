"""The cluster's network: a bridge on the host holding this machine's address, and per node a
network namespace joined to it by a veth pair, with no default route and an nftables
firewall that takes SSH from outside the cluster on the jump host (and deploy node) only."""

from __future__ import annotations

import json
from pathlib import Path

from .spec import ClusterSpec, NodeSpec, bridge_name, netns_name, netns_prefix, veth_name, veth_pattern
from .system import sh

NETNS_DIR = Path("/run/netns")
FIREWALL_TABLE = "brine_testbed"


def firewall(spec: ClusterSpec, node: NodeSpec) -> str:
    """The nftables ruleset of ``node``'s network namespace, as an ``nft -f`` file.

    It starts with ``flush ruleset`` so that it can also serve as the node's
    ``/etc/nftables.conf``: nftables.service then reloads the same rules.
    """
    peers = [other.address for other in spec.nodes if other.name != node.name]
    # SSH from outside the cluster: the jump host, and the deploy node (salt-ssh reaches it directly).
    rules = [
        'iif "lo" accept',
        "ct state established,related accept",
        *([f"ip saddr {{ {', '.join(peers)} }} accept"] if peers else []),
        "ip protocol icmp accept",
        "meta l4proto ipv6-icmp accept",
        *(["tcp dport 22 accept"] if node.name in (spec.jump_host, spec.deploy.name) else []),
    ]
    body = "\n".join(f"\t\t{rule}" for rule in rules)
    return (
        "#!/usr/sbin/nft -f\n"
        f"# Brine testbed: node {node.name} of cluster {spec.name}.\n"
        "flush ruleset\n\n"
        f"table inet {FIREWALL_TABLE} {{\n"
        "\tchain input {\n"
        "\t\ttype filter hook input priority filter; policy drop;\n"
        f"{body}\n"
        "\t}\n"
        "}\n"
    )


def create_bridge(spec: ClusterSpec) -> str:
    """Create the cluster's bridge with this machine's address on it; return its name."""
    bridge = bridge_name(spec.name)
    sh(["ip", "link", "add", "name", bridge, "type", "bridge"])
    sh(["ip", "addr", "add", f"{spec.host_address}/{spec.prefixlen}", "dev", bridge])
    sh(["ip", "link", "set", bridge, "up"])
    return bridge


def create_node_network(spec: ClusterSpec, node: NodeSpec, ruleset: Path) -> tuple[str, str]:
    """Create ``node``'s network namespace, veth and firewall; return (netns, host veth)."""
    netns = netns_name(spec.name, node.name)
    veth = veth_name(spec.name, node.index)
    sh(["ip", "netns", "add", netns])
    _plug(netns, "eth0", bridge_name(spec.name), veth, node.address, spec.prefixlen)
    sh(["ip", "-n", netns, "link", "set", "lo", "up"])
    sh(["ip", "netns", "exec", netns, "nft", "-f", ruleset])
    return netns, veth


def cluster_netns(cluster: str) -> list[str]:
    """The cluster's existing network namespaces."""
    prefix = netns_prefix(cluster)
    if not NETNS_DIR.is_dir():
        return []
    return sorted(entry.name for entry in NETNS_DIR.iterdir() if entry.name.startswith(prefix))


def cluster_links(cluster: str) -> list[str]:
    """The cluster's existing host interfaces: its bridge and the host ends of its veths."""
    links = json.loads(sh(["ip", "-j", "link", "show"]).stdout or "[]")
    pattern = veth_pattern(cluster)
    bridge = bridge_name(cluster)
    return [link["ifname"] for link in links if link["ifname"] == bridge or pattern.match(link["ifname"])]


def remove_network(cluster: str) -> None:
    """Delete the cluster's network namespaces, veths and bridge (whatever exists)."""
    for netns in cluster_netns(cluster):
        sh(["ip", "netns", "delete", netns], check=False)
        (NETNS_DIR / netns).unlink(missing_ok=True)  # a file left without its mount
    for link in cluster_links(cluster):
        sh(["ip", "link", "delete", link], check=False)


def attach_node(netns: str, bridge: str, host_end: str, address: str, prefixlen: int) -> bool:
    """Give the node of ``netns`` a second interface, ``eth1`` with ``address``, on another cluster's
    ``bridge`` (its host end ``host_end``); False when it has one already."""
    if sh(["ip", "-n", netns, "link", "show", "eth1"], check=False).returncode == 0:
        return False
    _plug(netns, "eth1", bridge, host_end, address, prefixlen)
    return True


def _plug(netns: str, interface: str, bridge: str, host_end: str, address: str, prefixlen: int) -> None:
    """A veth pair from ``bridge`` (its end ``host_end``) into ``netns`` as ``interface``, with ``address``, up."""
    sh(["ip", "link", "add", host_end, "type", "veth", "peer", "name", interface, "netns", netns])
    sh(["ip", "link", "set", host_end, "master", bridge, "up"])
    sh(["ip", "-n", netns, "addr", "add", f"{address}/{prefixlen}", "dev", interface])
    sh(["ip", "-n", netns, "link", "set", interface, "up"])
