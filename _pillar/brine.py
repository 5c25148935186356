"""
External pillar ``brine``: what a machine of a cluster needs beyond the
cluster's env and inventory as written.

``env``, ``inventory``
    The same, validated, with every default filled in (docs/pillar.md), so
    states never guess a default. A pillar that does not validate gets nothing
    here: ``cluster.validate``, the first step of every orchestrate, says why.
``brine_node``
    This machine: name, address, roles (``deploy`` for the deploy node), so the
    top file and states can match on roles.
``brine_kubeadm``
    A node's kubeadm configuration (``config``: init on the first master, join
    elsewhere; it holds the bootstrap token), its patches (``patches``: file
    name -> content), the command that brings it in (``command``) and the
    config API (``api_version``), rendered by ``_utils/brine_kubeadm.py``.
``brine_secrets``
    The secrets its states need, and only those, from ``.brine/clusters/<cluster>/``
    on the deploy side (made by ``salt-run cluster.secrets``):

- every node: the bundle CA certificate, the registry's credentials (to pull);
- the deploy node (``deploy.<cluster>``): also the registry's TLS key and
  certificate and its htpasswd line;
- under ``etcd``: each etcd member its own server and peer key and certificate
  (``server_crt``, ``server_key``, ``peer_crt``, ``peer_key``), the etcd CA
  certificate (``ca_crt``) and the health-check client pair
  (``healthcheck_client_crt``, ``healthcheck_client_key``); each master the CA
  certificate and the API server's client pair (``apiserver_etcd_client_crt``,
  ``apiserver_etcd_client_key``). The etcd CA key goes to no machine but the
  cluster's own masters, inside ``salt.cluster_state`` below;
- under ``kubernetes``: every node the bootstrap token (``bootstrap_token``), the
  cluster CA certificate and its pin (``ca_crt``, ``ca_cert_hash``, public; the
  load balancer checks the API servers with it); each master also the CA key, the
  front-proxy CA and the service-account pair (``ca_key``,
  ``front_proxy_ca_crt``, ``front_proxy_ca_key``, ``sa_key``, ``sa_pub``), which
  kubeadm uses where it finds them;
- under ``salt`` (the day-2 agent, env.day2.agent): every node the masters'
  public key (``master_pub``) and its own minion key pair (``minion_pem``,
  ``minion_pub``) when cluster.secrets made one (not for a node that joined
  with a key of its own); each master also the masters' key (``master_pem``), every
  inventory node's minion public key (``minion_pubs``: minion id -> key, so they
  are accepted without ``auto_accept``) and the cluster's deploy-side state
  (``cluster_state``: the files under ``pki/`` and ``secrets/``, by path under
  ``state/clusters/``), from which its own salt-master serves this cluster's
  pillar. The masters of a control cluster (``env.day2.control``) also get
  every other valid cluster's state, its known_hosts and its SSH private key
  (``<cluster>/ssh/private_key``): they deploy those clusters over salt-ssh.

``brine_day2``
    Public facts for the day-2 agent: the masters' addresses, the sha256
    fingerprint of their key (every minion checks it), and env.day2; on masters
    also the pillar their salt-master serves (``pillar_files``: top.sls and this
    cluster's files as written on the deploy side; on a control cluster's
    masters every valid cluster's).

States write these to 0600 files with ``show_changes: False``; nothing here is
ever printed or logged.

Configured in etc/salt/master:

.. code-block:: yaml

    ext_pillar:
      - brine: {}
"""

import json
import logging
import os

import brine_cluster
import brine_kubeadm
import brine_pillar
import brine_pki
import yaml

log = logging.getLogger(__name__)

__virtualname__ = "brine"
_CACHE = {}


def __virtual__():
    return __virtualname__


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _node(pillar, node):
    if node == brine_pillar.DEPLOY_NODE:
        host = pillar.get("env", {}).get("bundle", {}).get("url", "").split("://")[-1].split("/")[0]
        return {"name": node, "address": host.rsplit(":", 1)[0].strip("[]"), "roles": ["deploy"]}
    for entry in pillar.get("inventory", {}).get("nodes", []):
        if isinstance(entry, dict) and entry.get("name") == node:
            return {"name": node, "address": str(entry.get("address")), "roles": list(entry.get("roles", []))}
    return None


def ext_pillar(minion_id, pillar, **kwargs):  # pylint: disable=unused-argument
    """The ``brine_node`` and ``brine_secrets`` pillar of ``<node>.<cluster>``; empty for anything else."""
    node, _, cluster = minion_id.partition(".")
    if not cluster or cluster not in brine_cluster.cluster_names(__opts__):
        return {}
    try:
        complete = brine_pillar.parse({"env": pillar.get("env"), "inventory": pillar.get("inventory")})
    except ValueError:  # pydantic's ValidationError; cluster.validate reports it
        return {}
    full = complete.model_dump(mode="json")
    this = _node(full, node)
    if this is None:
        return {}
    state = os.path.join(brine_cluster.state_root(__opts__), "clusters", cluster)
    pki = os.path.join(state, "pki")
    try:
        credentials = json.loads(_read(os.path.join(state, "secrets", "registry.json")))
        secrets = {
            "bundle_ca_crt": _read(os.path.join(pki, "bundle-ca.crt")),
            "registry_username": credentials["username"],
            "registry_password": credentials["password"],
        }
        if node == brine_pillar.DEPLOY_NODE:
            secrets.update(
                registry_crt=_read(os.path.join(pki, "registry.crt")),
                registry_key=_read(os.path.join(pki, "registry.key")),
                registry_htpasswd=credentials["htpasswd"],
            )
    except (OSError, ValueError, KeyError):
        log.info("cluster %s has no secrets yet (salt-run cluster.secrets %s)", cluster, cluster)
        return {**full, "brine_node": this}
    etcd = _etcd_secrets(os.path.join(pki, "etcd"), this)
    if etcd:
        secrets["etcd"] = etcd
    kubernetes = _kubernetes_secrets(os.path.join(pki, "kubernetes"), os.path.join(state, "secrets"), this)
    extra = {}
    agent = _salt_secrets(state, full, this, cluster) if full["env"]["day2"]["agent"] else {}
    if agent:
        secrets["salt"] = agent
        extra["brine_day2"] = {
            "masters": [str(n["address"]) for n in full["inventory"]["nodes"] if "master" in n["roles"]],
            "master_finger": brine_pki.salt_finger(agent["master_pub"]),
            **full["env"]["day2"],
        }
        if "master" in this["roles"]:
            managed = _managed_clusters(cluster) if full["env"]["day2"]["control"] else {}
            extra["brine_day2"]["pillar_files"] = _pillar_files([cluster, *managed])
            if managed:
                agent["cluster_state"].update(_managed_state_files(managed))
    if kubernetes:
        secrets["kubernetes"] = kubernetes
        extra["brine_kubeadm"] = _kubeadm(full, this, kubernetes)
    return {**full, "brine_node": this, "brine_secrets": secrets, "brine_version": _brine_version(), **extra}


def _etcd_secrets(folder, node):
    """The etcd PKI files this machine needs (see the module's docstring), or {} when it needs none or they are not made yet."""
    files = {}
    if "etcd" in node["roles"]:
        member = os.path.join(folder, node["name"])
        files.update(
            server_crt=os.path.join(member, "server.crt"), server_key=os.path.join(member, "server.key"),
            peer_crt=os.path.join(member, "peer.crt"), peer_key=os.path.join(member, "peer.key"),
            healthcheck_client_crt=os.path.join(folder, "healthcheck-client.crt"),
            healthcheck_client_key=os.path.join(folder, "healthcheck-client.key"),
        )
    if "master" in node["roles"]:
        files.update(
            apiserver_etcd_client_crt=os.path.join(folder, "apiserver-etcd-client.crt"),
            apiserver_etcd_client_key=os.path.join(folder, "apiserver-etcd-client.key"),
        )
    if not files:
        return {}
    files["ca_crt"] = os.path.join(folder, "ca.crt")
    try:
        return {key: _read(path) for key, path in files.items()}
    except OSError:
        log.info("the etcd certificates of %s are not made yet (salt-run cluster.secrets)", node["name"])
        return {}


def _kubernetes_secrets(folder, secrets_folder, node):
    """The Kubernetes secrets this machine needs (see the module's docstring); {} for the deploy node or before they exist."""
    if node["name"] == brine_pillar.DEPLOY_NODE:
        return {}
    try:
        ca_crt = _read(os.path.join(folder, "ca.crt"))
        files = {"bootstrap_token": _read(os.path.join(secrets_folder, "bootstrap-token")).strip(),
                 "ca_cert_hash": brine_pki.ca_cert_hash(ca_crt), "ca_crt": ca_crt}
        if "master" in node["roles"]:
            files.update(
                ca_key=_read(os.path.join(folder, "ca.key")),
                front_proxy_ca_crt=_read(os.path.join(folder, "front-proxy-ca.crt")),
                front_proxy_ca_key=_read(os.path.join(folder, "front-proxy-ca.key")),
                sa_key=_read(os.path.join(folder, "sa.key")), sa_pub=_read(os.path.join(folder, "sa.pub")),
            )
        return files
    except (OSError, ValueError):
        log.info("the Kubernetes secrets of %s are not made yet (salt-run cluster.secrets)", node["name"])
        return {}


def _salt_secrets(state, full, node, cluster):
    """The day-2 agent's keys this machine needs (see the module's docstring); {} before they exist."""
    if node["name"] == brine_pillar.DEPLOY_NODE:
        return {}
    folder = os.path.join(state, "pki", "salt")
    try:
        found = {"master_pub": _read(os.path.join(folder, "master.pub"))}
        if "master" in node["roles"]:
            found["master_pem"] = _read(os.path.join(folder, "master.pem"))
    except OSError:
        log.info("the day-2 agent keys of %s are not made yet (salt-run cluster.secrets)", node["name"])
        return {}
    # A node that joined with a key of its own (onboarding) has none made here.
    minion = os.path.join(folder, "minions", node["name"])
    if os.path.isfile(minion + ".pem") and os.path.isfile(minion + ".pub"):
        found.update(minion_pem=_read(minion + ".pem"), minion_pub=_read(minion + ".pub"))
    if "master" in node["roles"]:
        pubs = {}
        for entry in full["inventory"]["nodes"]:
            path = os.path.join(folder, "minions", entry["name"] + ".pub")
            if os.path.isfile(path):
                pubs[f"{entry['name']}.{cluster}"] = _read(path)
        found["minion_pubs"] = pubs
        found["cluster_state"] = _state_files(state, cluster)
    return found


def _pillar_files(clusters):
    """The pillar a cluster's own salt-master serves, by path under its pillar root: top.sls and these clusters' files."""
    root = brine_cluster.pillar_root(__opts__)
    files = {"top.sls": _read(os.path.join(root, "top.sls"))}
    for cluster in clusters:
        folder = os.path.join(root, "clusters", cluster)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".sls"):
                files[f"clusters/{cluster}/{name}"] = _read(os.path.join(folder, name))
    return files


def _managed_clusters(control):
    """
    The clusters a control cluster's masters deploy: every other cluster declared
    here whose pillar validates, by name (its :class:`brine_cluster.Cluster`).
    """
    if "renderers" not in _CACHE:
        import salt.loader  # pylint: disable=import-outside-toplevel

        _CACHE["renderers"] = salt.loader.render(__opts__, __salt__)
    found = {}
    for name in brine_cluster.cluster_names(__opts__):
        if name == control:
            continue
        loaded = brine_cluster.load(__opts__, name, renderers=_CACHE["renderers"])
        if loaded.valid:
            found[name] = loaded
        else:
            log.warning("cluster %s is left off control cluster %s's masters: its pillar does not validate "
                        "(salt-run cluster.validate %s)", name, control, name)
    return found


def _managed_state_files(managed):
    """
    What a control cluster's masters need to deploy each cluster of ``managed``
    over salt-ssh, by path under ``state/clusters/``: its secrets and PKI (when
    made here already; else the control masters make them), its known_hosts,
    and the private key of env.ssh (as ``<name>/ssh/private_key``).
    """
    files = {}
    for name, loaded in managed.items():
        files.update(_state_files(loaded.state_dir, name))
        for source, target, fix in ((loaded.known_hosts, "known_hosts", f"salt-run cluster.trust {name}"),
                                    (loaded.private_key, "ssh/private_key", "env.ssh.private_key: a readable key")):
            try:
                files[f"{name}/{target}"] = _read(source)
            except (OSError, UnicodeDecodeError):
                log.warning("cluster %s has no %s here (%s): the control masters cannot reach it", name, target, fix)
    return files


def _state_files(state, cluster):
    """The text files under ``pki/`` and ``secrets/`` of a cluster's state folder, by path under ``state/clusters/``."""
    files = {}
    for top in ("pki", "secrets"):
        for folder, _, names in os.walk(os.path.join(state, top)):
            for name in sorted(names):
                if name.endswith(".tmp"):
                    continue
                path = os.path.join(folder, name)
                try:
                    files[f"{cluster}/{os.path.relpath(path, state)}"] = _read(path)
                except (OSError, UnicodeDecodeError):
                    log.info("%s left out of the cluster state for the masters", path)
    return files


def _brine_version():
    """Which Brine deployed this (brine_cluster.brine_version), read once per process."""
    if "brine_version" not in _CACHE:
        _CACHE["brine_version"] = brine_cluster.brine_version(__opts__)
    return _CACHE["brine_version"]


def _kubeadm(full, node, kubernetes):
    """The ``brine_kubeadm`` pillar of a node (see the module's docstring)."""
    inventory_node = next(n for n in full["inventory"]["nodes"] if n["name"] == node["name"])
    config_file = "/etc/kubernetes/brine/kubeadm.yaml"
    return {
        "api_version": brine_kubeadm.api_version(full["env"]["kubernetes_version"]),
        "config": brine_kubeadm.render(full["env"], full["inventory"], inventory_node, kubernetes["bootstrap_token"],
                                       kubernetes["ca_cert_hash"]),
        "patches": brine_kubeadm.patches(full["env"], inventory_node),
        "command": brine_kubeadm.command(full["env"], inventory_node, full["inventory"], config_file),
        "upgrade_ignored_checks": brine_kubeadm.upgrade_ignored_checks(full["env"], inventory_node),
        "config_file": config_file,
        "standalone_kubelet_arguments": brine_kubeadm.standalone_kubelet_arguments(full["env"]),
        "standalone_kubelet_config": yaml.safe_dump(brine_kubeadm.standalone_kubelet_configuration(full["env"]),
                                                    sort_keys=False),
    }
