"""
Roster of every declared cluster's nodes, made from the cluster pillars.

Each node of ``pillar/clusters/<cluster>/`` is the salt-ssh target
``<node>.<cluster>``, and the cluster's deploy node (the host of env.bundle.url)
is ``deploy.<cluster>``; every node but the jump host is reached through the
jump host, with host keys checked on both hops against the cluster's own
known_hosts (see ``salt-run cluster.trust``). Clusters whose pillar does not
validate are left out (``salt-run cluster.validate <name>`` says why).

CLI Example (from the repository root):

.. code-block:: bash

    salt-ssh '*.demo' test.ping
    salt-ssh 'master2.demo' grains.item os
    salt-ssh 'deploy.demo' state.apply bundle_server
"""

import logging

import brine_cluster

log = logging.getLogger(__name__)

__virtualname__ = "brine"


def __virtual__():
    return __virtualname__


def targets(tgt, tgt_type="glob", **kwargs):  # pylint: disable=unused-argument
    """
    Return the roster entries of every valid cluster's nodes that match ``tgt``.
    """
    pool = {}
    for name in brine_cluster.cluster_names(__opts__):
        cluster = brine_cluster.load(__opts__, name)
        if not cluster.valid:
            log.warning("cluster %s left out of the roster: its pillar does not validate", name)
            continue
        brine_cluster.ensure_ssh_config(cluster)
        for node in cluster.ssh_targets:
            pool[cluster.minion_id(node["name"])] = brine_cluster.roster_entry(cluster, node)
    return __utils__["roster_matcher.targets"](pool, tgt, tgt_type, "ipv4")
