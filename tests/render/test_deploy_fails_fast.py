"""
cluster.deploy on a broken pillar: it stops at its first step, non-zero, with
every problem named, and never opens a connection to any node.
"""

import os

import pytest

from tests.saltenv import SaltEnv


@pytest.fixture
def env(tmp_path):
    return SaltEnv(str(tmp_path))


def break_demo(env):
    def env_change(data):
        data["env"]["networks"]["pod"] = "10.77.0.0/16"
        data["env"]["runtime"] = "cri-o"

    def inventory_change(data):
        data["inventory"]["nodes"][1]["address"] = "10.99.0.12"

    env.edit("demo", "env.sls", env_change)
    env.edit("demo", "inventory.sls", inventory_change)


def test_validate_runner_prints_every_problem_one_per_line(env):
    break_demo(env)
    proc = env.salt_run("cluster.validate", "demo")
    assert proc.returncode != 0
    lines = proc.stdout.strip().splitlines()
    assert lines[:3] == [
        "env.networks.pod: 10.77.0.0/16 overlaps env.networks.node 10.77.0.0/24 "
        "(node, pod and service networks that share no address)",
        "env.runtime: 'cri-o' is not one of the choices (containerd (default) or docker)",
        "inventory.nodes[1].address: 10.99.0.12 is outside env.networks.node 10.77.0.0/24 "
        "(an address inside 10.77.0.0/24, or widen env.networks.node)",
    ]
    assert lines[3] == "cluster demo: 3 problem(s); nothing was changed on any node"


def test_validate_runner_passes_a_good_cluster(env):
    proc = env.salt_run("cluster.validate", "demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "cluster demo: pillar valid (5 nodes)"


def test_deploy_stops_before_touching_any_node(env):
    break_demo(env)
    proc = env.deploy("demo", timeout=300)
    assert proc.returncode != 0
    assert "env.runtime: 'cri-o' is not one of the choices" in proc.stdout
    assert "ID: cluster-nodes-reachable" in proc.stdout
    assert "One or more requisite failed" in proc.stdout
    # salt-ssh never ran: no ssh_config, no known_hosts, no salt-ssh log.
    assert not os.path.exists(env.ssh_config("demo"))
    assert not os.path.exists(os.path.join(env.state, "salt-ssh.log"))


def test_deploy_names_a_missing_cluster(env):
    proc = env.deploy("nope", timeout=300)
    assert proc.returncode != 0
    assert f"cluster: no cluster 'nope' under {env.pillar}/clusters/ (one of: demo, example;" in proc.stdout


def test_deploy_without_a_cluster_says_how_to_name_one(env):
    proc = env.salt_run("state.orchestrate", "cluster.deploy", timeout=300)
    assert proc.returncode != 0
    assert "cluster: no cluster named" in proc.stdout


def test_unrenderable_pillar_is_reported_with_its_file(env):
    with open(env.cluster_file("demo", "inventory.sls"), "a", encoding="utf-8") as handle:
        handle.write("  - name: [oops\n")
    proc = env.salt_run("cluster.validate", "demo")
    assert proc.returncode != 0
    assert proc.stdout.startswith(f"{env.pillar}/clusters/demo/inventory.sls: does not render")


def test_reach_refuses_nodes_with_no_trusted_host_key(env):
    proc = env.salt_run("cluster.reach", "demo")
    assert proc.returncode != 0
    assert "master2 (10.77.0.12): no trusted host key; run salt-run cluster.trust demo" in proc.stdout
    assert "cluster demo: no node was contacted" in proc.stdout
