"""
What the end-to-end modules share.

One real v1.37.2 cluster, ``e2e137`` (3 masters + 2 workers, the demo's settings, with
the day-2 agent, and two spare machines: ``worker3`` to onboard, ``rogue1`` that must
stay out), is deployed once from bare nodes and serves every module that asks for
``shared_cluster``/``shared_deployed``: first the modules that only look and converge
(test_deploy_k8s137), then those that take nodes away (a module that sets
``DESTROYS_SHARED_CLUSTER = True``: test_day2_cluster). Those tests run after every
other test of the session, so the cluster is up only while they run.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.clusters import TestCluster
from tests.saltenv import SaltEnv, failures

SHARED_NAME = "e2e137"
SHARED_MASTERS = ["master1", "master2", "master3"]
SHARED_WORKERS = ["worker1", "worker2"]


@pytest.fixture(scope="session")
def shared_cluster(tmp_path_factory, real_bundle):
    env = SaltEnv(str(tmp_path_factory.mktemp(SHARED_NAME)))
    cluster = TestCluster(env, SHARED_NAME, third_octet=84, masters=len(SHARED_MASTERS),
                          workers=len(SHARED_WORKERS), kubernetes="built", spares=("worker3", "rogue1"))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture(scope="session")
def shared_deployed(shared_cluster):
    """cluster.deploy of the shared cluster from bare nodes: (steps, seconds)."""
    started = time.monotonic()
    code, steps, out = shared_cluster.env.orchestrate("cluster.deploy", {"cluster": SHARED_NAME}, timeout=3600)
    took = time.monotonic() - started
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-8000:] or out[-5000:]
    return steps, took


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    """Tests on the shared cluster last (after deselection), those that take its nodes away at the very end."""
    def order(item) -> tuple[bool, bool]:
        shares = "shared_cluster" in getattr(item, "fixturenames", ())
        return shares, shares and bool(getattr(item.module, "DESTROYS_SHARED_CLUSTER", False))

    items.sort(key=order)
