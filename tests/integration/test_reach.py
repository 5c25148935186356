"""
salt-ssh through one jump host, on the real testbed: the roster reaches every
node, host keys are verified on both hops, a changed key is a clear refusal,
and cluster.deploy passes its first two steps.
"""

import os
import re
import subprocess

import pytest

from tests.saltenv import SaltEnv

pytestmark = pytest.mark.testbed


@pytest.fixture(scope="module")
def env(demo_testbed, tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("reach")))

    def no_bundle(data):  # this module stops short of the bundle: name one that is not there
        data["env"]["bundle"]["file"] = "/srv/brine/incoming/not-carried-in.tar"

    salt_env.edit("demo", "env.sls", no_bundle)
    proc = salt_env.salt_run("cluster.trust", "demo", f"known_hosts={demo_testbed.host_keys_file}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return salt_env


def ssh(env, node, command, timeout=30):
    return subprocess.run(
        ["ssh", "-F", env.ssh_config("demo"), node, command], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_trusted_keys_are_exactly_the_cluster_machines(env, demo_testbed):
    with open(env.known_hosts("demo"), encoding="utf-8") as handle:
        hosts = {line.split()[0] for line in handle if line.strip()}
    assert hosts == {node["address"] for node in demo_testbed.nodes} | {demo_testbed.deploy_address}
    assert oct(os.stat(env.known_hosts("demo")).st_mode & 0o777) == "0o600"


def test_salt_ssh_reaches_every_machine_through_the_roster(env):
    proc = env.salt_ssh("*.demo", "grains.item", "host", "--out=json", "--static")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import json

    hosts = {minion: data["host"] for minion, data in json.loads(proc.stdout).items()}
    assert hosts == {
        "master1.demo": "master1",
        "master2.demo": "master2",
        "master3.demo": "master3",
        "worker1.demo": "worker1",
        "worker2.demo": "worker2",
        "deploy.demo": "deploy",
    }


def test_only_the_jump_host_is_dialled_directly(env, demo_testbed):
    master2 = next(n for n in demo_testbed.nodes if n["name"] == "master2")
    direct = subprocess.run(
        [
            "ssh",
            "-F",
            env.ssh_config("demo"),
            "-o",
            "ProxyJump=none",
            "-o",
            "ConnectTimeout=3",
            "-o",
            f"HostName={master2['address']}",
            "master2",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert direct.returncode == 255
    through = ssh(env, "master2", "hostname")
    assert through.returncode == 0 and through.stdout.strip() == "master2", through.stderr


def test_cluster_reach_reports_every_node(env):
    proc = env.salt_run("cluster.reach", "demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cluster demo: all 5 nodes answer through master1" in proc.stdout
    for node in ("master1", "master2", "master3", "worker1", "worker2"):
        assert re.search(rf"^{node} \(10\.77\.0\.\d+\): answers$", proc.stdout, re.M)


def test_deploy_passes_its_first_steps(env):
    # The bundle named is not on the deploy node: the deploy passes validate,
    # secrets, reach, preflight and its version guard (no cluster runs yet), then
    # stops at the bundle, saying where it looked.
    proc = env.deploy("demo", timeout=600)
    assert proc.returncode != 0
    steps = re.findall(r"ID: (\S+)\n\s+Function: .*\n\s+Result: (\w+)", proc.stdout)
    assert steps[:5] == [("cluster-pillar-valid", "True"), ("cluster-secrets-present", "True"),
                         ("cluster-nodes-reachable", "True"), ("cluster-preflight-passed", "True"),
                         ("cluster-version-unchanged", "True")], proc.stdout
    assert steps[5] == ("cluster-bundle-served", "False")
    assert "no control plane running yet; it will run v1.37.2" in proc.stdout
    assert "cluster demo: all 5 nodes answer through master1" in proc.stdout
    assert "no bundle at /srv/brine/incoming/not-carried-in.tar" in proc.stdout


def test_a_changed_host_key_is_refused_by_name(env, demo_testbed):
    # As if worker2 were reinstalled: new host keys (the old ones are put back after).
    demo_testbed.run(
        "worker2",
        "mkdir -p /root/hostkeys && cp -a /etc/ssh/ssh_host_* /root/hostkeys/ && "
        "rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -A && systemctl restart ssh",
    )
    try:
        proc = env.salt_run("cluster.reach", "demo")
        assert proc.returncode != 0
        assert re.search(r"^worker2 \(10\.77\.0\.22\) \(through jump host master1\): its host key CHANGED", proc.stdout, re.M), (
            proc.stdout
        )
        assert "worker1 (10.77.0.21): answers" in proc.stdout
        # Importing the new key is refused too: trust never overwrites a key silently.
        fresh = demo_testbed.run("worker2", "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        new_keys = os.path.join(env.root, "new_known_hosts")
        with open(new_keys, "w", encoding="utf-8") as handle:
            handle.write(f"10.77.0.22 {fresh[0]} {fresh[1]}\n")
        refused = env.salt_run("cluster.trust", "demo", f"known_hosts={new_keys}")
        assert refused.returncode != 0 and "worker2 (10.77.0.22): host key CHANGED" in refused.stdout
        # The documented way back: forget the node, then trust its new key.
        assert env.salt_run("cluster.trust", "demo", "forget=worker2").returncode == 0
        assert env.salt_run("cluster.trust", "demo", f"known_hosts={new_keys}").returncode == 0
        assert env.salt_run("cluster.reach", "demo").returncode == 0
    finally:
        demo_testbed.run("worker2", "cp -a /root/hostkeys/* /etc/ssh/ && systemctl restart ssh")
        env.salt_run("cluster.trust", "demo", "forget=worker2")
        env.salt_run("cluster.trust", "demo", f"known_hosts={demo_testbed.host_keys_file}")


def test_accept_new_scans_through_the_jump_host(demo_testbed, tmp_path):
    fresh = SaltEnv(str(tmp_path))
    proc = fresh.salt_run("cluster.trust", "demo", "accept_new=True")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for node in ("master1", "master2", "worker2", "deploy"):
        assert re.search(rf"^{node}: now trusted SHA256:\S+", proc.stdout, re.M)
    with (
        open(fresh.known_hosts("demo"), encoding="utf-8") as mine,
        open(demo_testbed.host_keys_file, encoding="utf-8") as provisioned,
    ):
        scanned = {tuple(line.split()[:3]) for line in mine if line.strip()}
        known = {tuple(line.split()[:3]) for line in provisioned if line.strip()}
    assert {k for k in scanned if k[1] == "ssh-ed25519"} <= known
    again = fresh.salt_run("cluster.trust", "demo", "accept_new=True")
    assert again.returncode == 0 and "now trusted" not in again.stdout
