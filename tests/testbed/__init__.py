"""Brine's testbed: a cluster's nodes as systemd-booted containers on one machine.

    from tests.testbed import Testbed
    tb = Testbed("demo", repo_root="/work/main")
    tb.up()
    tb.run("master1", "systemctl is-system-running")
    tb.down()

Command line: ``python -m tests.testbed up|down|status CLUSTER`` and ``down-all``.
"""

from .spec import ClusterSpec, NodeSpec, SpecError, load_spec
from .system import TestbedError
from .testbed import Testbed, down_cluster, known_clusters

__all__ = ["ClusterSpec", "NodeSpec", "SpecError", "Testbed", "TestbedError", "down_cluster", "known_clusters", "load_spec"]
