"""
Many clusters on real Kubernetes (v1.37.2 built from Go modules): a control cluster
(one master, ``env.day2.control: true``) is deployed from the deploy node; its
master, given a route to the user cluster's network as a machine room would give
it, then deploys the user cluster (one master, one worker) itself over salt-ssh
through the user cluster's jump host, as a cluster job. Then every control node is
stopped, and the user cluster onboards a new worker through its own reactor and
removes it again with its own salt-master. What a user checks by hand:

- the control master lists every cluster and holds each one's pillar, secrets and
  SSH key (0600), and deploys the user cluster to all nodes Ready, as a job;
- the user cluster's masters hold their own cluster only, nothing of the control
  cluster;
- with the control cluster off, a node joins through the user cluster's reactor
  alone and is removed by its ``cluster.node_remove``.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
import yaml

from tests.clusters import TestCluster
from tests.saltenv import SaltEnv, failures, step_table

pytestmark = [pytest.mark.testbed, pytest.mark.e2e, pytest.mark.slow]

CONTROL = "e2ectl"
USER = "e2eusr"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
SALT_BIN = "/opt/brine/salt/bin"
#: The control master's address on the user cluster's network (the route a machine room gives it).
ATTACHED = 250


@pytest.fixture(scope="module")
def clusters(tmp_path_factory, real_bundle):
    env = SaltEnv(str(tmp_path_factory.mktemp("many")))
    control = TestCluster(env, CONTROL, third_octet=93, masters=1, workers=0, kubernetes="built",
                          env_overrides={"day2": {"control": True}})
    user = TestCluster(env, USER, third_octet=94, masters=1, workers=1, kubernetes="built", spares=("worker2",))
    # Only these two clusters are declared here: the control masters get every valid one.
    for other in ("demo", "example"):
        shutil.rmtree(env.cluster_file(other, ""), ignore_errors=True)
    try:
        control.up()
        user.up()
        yield control, user
    finally:
        user.down()
        control.down()


def salt_run(cluster, node, arguments, timeout=180):
    return cluster.testbed.run(node, f"{SALT_BIN}/salt-run {arguments}", timeout=timeout)


def orchestrate_on(cluster, node, sls, pillar, timeout=3600):
    """An orchestrate run on a cluster's master, as its user would; (exit code, steps by id, output)."""
    proc = salt_run(cluster, node, f"state.orchestrate {sls} pillar='{json.dumps(pillar)}' --out=json",
                    timeout=timeout)
    try:
        data = json.loads(proc.stdout)["data"]
    except (ValueError, KeyError):
        pytest.fail(f"{sls} on {cluster.name}/{node}: no JSON (exit {proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    steps = {s["__id__"]: s for host in data.values() if isinstance(host, dict) for s in host.values()
             if isinstance(s, dict) and "__id__" in s}
    return proc.returncode, steps, proc.stdout


def ready_nodes(cluster, master="master1"):
    proc = cluster.testbed.run(master, f"{KUBECTL} get nodes -o json")
    if proc.returncode != 0:
        return []
    return sorted(item["metadata"]["name"] for item in json.loads(proc.stdout)["items"]
                  if any(c["type"] == "Ready" and c["status"] == "True" for c in item["status"]["conditions"]))


@pytest.fixture(scope="module")
def control_deployed(clusters):
    control, user = clusters
    started = time.monotonic()
    code, steps, out = control.env.orchestrate("cluster.deploy", {"cluster": CONTROL}, timeout=3600)
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-8000:] or out[-5000:]
    print(f"\nFIGURE control cluster (1 master) deployed from the deploy node (s): {time.monotonic() - started:.1f}")
    control.testbed.attach("master1", user.testbed, ATTACHED)
    return steps


@pytest.fixture(scope="module")
def user_deployed(clusters, control_deployed):
    control, _ = clusters
    started = time.monotonic()
    code, steps, out = orchestrate_on(control, "master1", "cluster.deploy", {"cluster": USER})
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-8000:] or out[-5000:]
    print(f"\nFIGURE user cluster (1 master + 1 worker) deployed from the control master (s): "
          f"{time.monotonic() - started:.1f}")
    print(step_table(steps))
    return steps


def test_the_control_master_holds_every_cluster_and_each_ones_key(clusters, control_deployed):
    control, _ = clusters
    jobs = control.env.salt_run("cluster.jobs", CONTROL).stdout
    assert re.search(r"deploy-[\w-]+: done", jobs), jobs
    listed = salt_run(control, "master1", "cluster.list")
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert sorted(rows) == [CONTROL, USER], listed.stdout
    assert rows[USER][1:5] == ["1.37.2", "1", "1", "valid"], listed.stdout
    key = f"/srv/brine/state/clusters/{USER}/ssh/private_key"
    assert control.testbed.run("master1", f"stat -c %a {key}").stdout.strip() == "600"
    # The user cluster's one reachable server answers SSH; its other nodes do not.
    reach = "timeout 5 bash -c '</dev/tcp/{}/22' && echo open || echo closed"
    assert control.testbed.run("master1", reach.format("10.94.0.11")).stdout.strip() == "open"
    assert control.testbed.run("master1", reach.format("10.94.0.21")).stdout.strip() == "closed"


def test_the_control_master_deploys_the_user_cluster_as_a_job(clusters, user_deployed):
    control, user = clusters
    assert ready_nodes(user) == ["master1", "worker1"]
    jobs = salt_run(control, "master1", f"cluster.jobs {USER}").stdout
    assert re.search(r"deploy-[\w-]+: done", jobs), jobs
    report = salt_run(control, "master1", f"cluster.report {USER}").stdout
    assert re.search(r"/srv/brine/state/clusters/e2eusr/jobs/\S+-deploy-\S+/report\.html", report), report
    # The deploy node ran none of it: no job of the user cluster there.
    assert not user.env.salt_run("cluster.jobs", USER).stdout.count("deploy-")
    # The user cluster's master holds its own cluster only.
    listing = user.testbed.run("master1", "ls /srv/brine/pillar/clusters /srv/brine/state/clusters").stdout.split()
    assert CONTROL not in listing and listing.count(USER) == 2, listing
    assert user.testbed.run("master1", f"test -e /srv/brine/state/clusters/{USER}/ssh").returncode != 0
    recorded = user.testbed.run("master1", f"{KUBECTL} -n kube-system get configmap brine-cluster -o json")
    assert json.loads(recorded.stdout)["data"]["cluster"] == USER


def test_the_user_cluster_adds_and_removes_a_node_with_the_control_cluster_off(clusters, user_deployed):
    control, user = clusters
    control.down()
    assert {node["state"] for node in control.testbed.status()} == {"down"}, "the control cluster is still up"
    spare = user.spares["worker2"]
    script = user.testbed.run("master1", "cat /srv/brine/minion-bootstrap.sh", check=True).stdout
    proc = user.testbed.run("worker2", "cat > /root/minion-bootstrap.sh && sh /root/minion-bootstrap.sh worker2",
                            input=script, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    finger = re.search(r"minion_fingerprint of \S+: (\S+)", proc.stdout).group(1)
    inventory = yaml.safe_dump({"inventory": {"nodes": [*user.nodes, {**spare, "minion_fingerprint": finger}]}},
                               sort_keys=False)
    user.testbed.run("master1", f"cat > /srv/brine/pillar/clusters/{USER}/inventory.sls", input=inventory, check=True)

    started = time.monotonic()
    user.testbed.run("worker2", "systemctl start salt-minion", check=True)
    deadline = started + 900
    while time.monotonic() < deadline and "worker2" not in ready_nodes(user):
        time.sleep(3)
    print(f"\nFIGURE onboarding on a user cluster with the control cluster off, minion start to Ready (s): "
          f"{time.monotonic() - started:.1f}")
    jobs = salt_run(user, "master1", f"cluster.jobs {USER}").stdout
    while time.monotonic() < deadline and re.search(r"node_add-worker2-\w+: (queued|running)", jobs):
        time.sleep(3)
        jobs = salt_run(user, "master1", f"cluster.jobs {USER}").stdout
    assert "worker2" in ready_nodes(user), jobs
    assert re.search(r"node_add-worker2-\w+: done", jobs), jobs

    code, steps, out = orchestrate_on(user, "master1", "cluster.node_remove", {"cluster": USER, "node": "worker2"},
                                      timeout=900)
    assert code == 0 and not failures(steps), out[-5000:]
    assert ready_nodes(user) == ["master1", "worker1"]
    assert user.testbed.run("master1", f"{KUBECTL} get node worker2").returncode != 0
    keys = json.loads(user.testbed.run("master1", f"{SALT_BIN}/salt-key -L --out=json").stdout)
    assert f"worker2.{USER}" not in keys["minions"] + keys["minions_pre"]
