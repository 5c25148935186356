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
  ``apiserver_etcd_client_key``). The etcd CA key goes to no machine.

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
import brine_pillar

log = logging.getLogger(__name__)

__virtualname__ = "brine"


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
    return {**full, "brine_node": this, "brine_secrets": secrets}


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
