"""
The ``host-gw`` pod network: every node's pods on a Linux bridge (``cni0``),
addresses from the node's own pod CIDR (``spec.podCIDR``, which the
controller-manager allocates from the cluster's pod network), and a route to
every other node's pod CIDR through that node's address. It needs the nodes on
one L2 network (no encapsulation); a real option on flat networks, and what the
testbed runs when Calico is not in the bundle.

On each node this state writes:

- ``/etc/cni/net.d/10-brine-host-gw.conflist``: bridge + host-local (the node's
  pod CIDR) + portmap, from the CNI plugins in ``/opt/cni/bin``;
- ``/etc/brine/host-gw/routes``: ``<pod CIDR> <node address>`` per other node,
  applied as routes with protocol number 77 (so stale ones are found and
  removed), and a masquerade rule for pod traffic leaving the pod network
  (table ``inet brine_host_gw``); ``brine-host-gw.service`` applies both at boot.

The nodes are read from the API with the node's own kubelet credentials,
through its load balancer.

.. code-block:: yaml

    host-gw-configured:
      brine_hostgw.configured:
        - name: worker1
        - pod_network: 10.244.0.0/16
"""

import ipaddress
import json
import os
import ssl
import subprocess
import urllib.request

__virtualname__ = "brine_hostgw"

CONFLIST = "/etc/cni/net.d/10-brine-host-gw.conflist"
STATE_DIR = "/etc/brine/host-gw"
ROUTES = f"{STATE_DIR}/routes"
NFT = f"{STATE_DIR}/masquerade.nft"
ROUTE_PROTO = "77"
KUBELET_CERT = "/var/lib/kubelet/pki/kubelet-client-current.pem"
CA = "/etc/kubernetes/brine/lb/ca.crt"


def __virtual__():
    return __virtualname__


def _nodes(api_port):
    context = ssl.create_default_context(cafile=CA)
    context.load_cert_chain(KUBELET_CERT)
    with urllib.request.urlopen(f"https://127.0.0.1:{api_port}/api/v1/nodes", timeout=15, context=context) as response:
        return json.load(response)["items"]


def _internal_ip(node):
    return next((a["address"] for a in node["status"].get("addresses", []) if a["type"] == "InternalIP"), None)


def conflist(pod_cidr):
    """The CNI configuration of a node whose pods live in ``pod_cidr``."""
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "brine-host-gw",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": pod_cidr}]],
                      "routes": [{"dst": "0.0.0.0/0" if ipaddress.ip_network(pod_cidr).version == 4 else "::/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=2) + "\n"  # fmt: skip


def masquerade(pod_network):
    family = "ip" if ipaddress.ip_network(pod_network).version == 4 else "ip6"
    return (
        "# Managed by Brine (brine_hostgw): pod traffic leaving the pod network leaves with the node's address.\n"
        "table inet brine_host_gw\ndelete table inet brine_host_gw\n"
        "table inet brine_host_gw {\n"
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
        f"    {family} saddr {pod_network} {family} daddr != {pod_network} masquerade\n  }}\n}}\n"
    )


def _routes_now():
    proc = subprocess.run(["ip", "-j", "route", "show", "proto", ROUTE_PROTO], capture_output=True, text=True, check=False)
    return {(r["dst"], r.get("gateway")) for r in json.loads(proc.stdout or "[]")}


def _write(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)
    return True


def _masquerade_loaded(pod_network):
    proc = subprocess.run(["nft", "list", "table", "inet", "brine_host_gw"], capture_output=True, text=True, check=False)
    return proc.returncode == 0 and str(pod_network) in proc.stdout


def configured(name, pod_network, api_port=6443):
    """
    This node's host-gw pod network: its CNI configuration, routes to every
    other node's pod CIDR, the masquerade rule.

    name
        This node's Kubernetes name.
    pod_network
        The cluster's pod network (env.networks.pod).
    api_port
        The local load balancer's port.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    try:
        nodes = _nodes(api_port)
    except (OSError, ValueError, ssl.SSLError) as error:
        ret["comment"] = f"cannot read the nodes from the API through 127.0.0.1:{api_port}: {error}"
        return ret
    me = next((n for n in nodes if n["metadata"]["name"] == name), None)
    if me is None or not me["spec"].get("podCIDR"):
        ret["comment"] = (f"{name} has no pod CIDR yet (node {'not registered' if me is None else 'without spec.podCIDR'}; "
                          "the controller-manager allocates them from networking.podSubnet)")
        return ret
    wanted_routes = {}
    for node in nodes:
        cidr, address = node["spec"].get("podCIDR"), _internal_ip(node)
        if node["metadata"]["name"] != name and cidr and address:
            wanted_routes[cidr] = address
    routes_text = "".join(f"{cidr} {via}\n" for cidr, via in sorted(wanted_routes.items()))
    wanted_now = set(wanted_routes.items())
    present = _routes_now()
    files = {CONFLIST: conflist(me["spec"]["podCIDR"]), ROUTES: routes_text, NFT: masquerade(pod_network)}
    stale = sorted(present - wanted_now)
    missing = sorted(wanted_now - present)
    needs_nft = not _masquerade_loaded(pod_network)
    if __opts__["test"]:
        ret.update(result=None, comment=f"host-gw of {name}: {len(missing)} route(s) to add, {len(stale)} to remove")
        return ret
    changed_files = [path for path, text in files.items() if _write(path, text)]
    for cidr, via in stale:
        subprocess.run(["ip", "route", "del", cidr, "via", via, "proto", ROUTE_PROTO], check=False)
    problems = []
    for cidr, via in missing:
        proc = subprocess.run(["ip", "route", "replace", cidr, "via", via, "proto", ROUTE_PROTO],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            problems.append(f"route {cidr} via {via}: {proc.stderr.strip()}")
    if needs_nft:
        proc = subprocess.run(["nft", "-f", NFT], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            problems.append(f"nft -f {NFT}: {proc.stderr.strip()}")
    changes = {}
    if changed_files:
        changes["files"] = changed_files
    if missing:
        changes["routes added"] = [f"{c} via {v}" for c, v in missing]
    if stale:
        changes["routes removed"] = [f"{c} via {v}" for c, v in stale]
    if needs_nft:
        changes["masquerade"] = f"pods of {pod_network} leaving it"
    ret["changes"] = changes
    if problems:
        ret["comment"] = "\n".join(problems)
        return ret
    ret.update(result=True, comment=f"host-gw of {name}: pods in {me['spec']['podCIDR']}, "
                                    f"{len(wanted_routes)} route(s) to other nodes")
    return ret
