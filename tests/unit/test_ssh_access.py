"""
How the deploy node reaches a cluster: the roster entries and the ssh_config made
from the pillar. Only the jump host is dialled directly; every hop checks host
keys against the cluster's own known_hosts and never prompts.
"""

import os
import shlex
import subprocess

import brine_cluster
import pytest
import salt.config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def opts(tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    opts = salt.config.master_config(os.path.join(REPO_ROOT, "etc", "salt", "master"))
    opts.update(
        brine_repo_root=REPO_ROOT,
        brine_state_dir=str(state),
        pillar_roots={"base": [os.path.join(REPO_ROOT, "pillar")]},
        file_roots={"base": [os.path.join(REPO_ROOT, "salt")]},
    )
    return opts


@pytest.fixture(scope="module")
def demo(opts):
    cluster = brine_cluster.load(opts, "demo")
    assert cluster.valid, cluster.problems
    return cluster


def test_clusters_are_found(opts):
    assert {"demo", "example"} <= set(brine_cluster.cluster_names(opts))


def test_unknown_cluster_is_a_clear_problem(opts):
    cluster = brine_cluster.load(opts, "nope")
    assert [p.path for p in cluster.problems] == ["cluster"]
    assert "no cluster 'nope'" in str(cluster.problems[0]) and "demo" in str(cluster.problems[0])


def test_minion_ids_name_node_and_cluster(demo):
    assert demo.minion_id("master2") == "master2.demo"


def test_jump_host_is_dialled_directly(demo):
    entry = brine_cluster.roster_entry(demo, demo.node("master1"))
    assert entry["host"] == "10.77.0.11"
    assert not any(o.startswith(("ProxyCommand", "ProxyJump")) for o in entry["ssh_options"])


@pytest.mark.parametrize("node", ["master2", "master3", "worker1", "worker2"])
def test_other_nodes_go_through_the_jump_host(demo, node):
    entry = brine_cluster.roster_entry(demo, demo.node(node))
    proxy = [o for o in entry["ssh_options"] if o.startswith("ProxyCommand=")]
    assert len(proxy) == 1
    # salt-ssh joins "-o <option>" and splits with shlex: the command must survive that.
    argv = shlex.split(f"ssh -o {proxy[0]}")
    assert argv[2] == f"ProxyCommand=ssh -F {demo.ssh_config} -W [%h]:%p {brine_cluster.JUMP_ALIAS}"


@pytest.mark.parametrize("node", ["master1", "worker2"])
def test_host_keys_are_always_checked(demo, node):
    entry = brine_cluster.roster_entry(demo, demo.node(node))
    options = entry["ssh_options"]
    assert "StrictHostKeyChecking=yes" in options
    assert f"UserKnownHostsFile={demo.known_hosts}" in options
    assert "GlobalKnownHostsFile=/dev/null" in options
    assert not any("StrictHostKeyChecking=no" in o or ("/dev/null" in o and "UserKnownHosts" in o) for o in options)
    assert entry["priv"] == os.path.join(REPO_ROOT, ".brine", "testbed", "id_ed25519")


def test_ssh_config_is_what_ssh_understands(demo, tmp_path):
    path = brine_cluster.ensure_ssh_config(demo)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # ssh -G prints the configuration it would use, without connecting.
    out = subprocess.run(["ssh", "-G", "-F", path, "worker2"], capture_output=True, text=True, check=True).stdout
    settings = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    assert settings["hostname"] == "10.77.0.22"
    assert settings["proxyjump"] == brine_cluster.JUMP_ALIAS
    assert settings["stricthostkeychecking"] == "true"
    assert settings["userknownhostsfile"] == demo.known_hosts
    assert settings["batchmode"] == "yes"
    jump = subprocess.run(["ssh", "-G", "-F", path, brine_cluster.JUMP_ALIAS], capture_output=True, text=True, check=True).stdout
    jump_settings = dict(line.split(" ", 1) for line in jump.splitlines() if " " in line)
    assert jump_settings["hostname"] == "10.77.0.11"
    assert "proxyjump" not in jump_settings
    assert jump_settings["stricthostkeychecking"] == "true"


def test_ssh_config_is_rewritten_only_when_it_changes(demo):
    brine_cluster.ensure_ssh_config(demo)
    before = os.stat(demo.ssh_config).st_mtime_ns
    assert brine_cluster.write_private_file(demo.ssh_config, brine_cluster.ssh_config_text(demo)) is False
    assert os.stat(demo.ssh_config).st_mtime_ns == before


def test_known_host_names_follow_ssh(demo):
    assert brine_cluster.known_host_name("10.77.0.11", 22) == "10.77.0.11"
    assert brine_cluster.known_host_name("10.77.0.11", 2222) == "[10.77.0.11]:2222"
