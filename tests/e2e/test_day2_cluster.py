"""
Day two on a real cluster (Kubernetes v1.37.2 built from Go modules, 3 masters + 2
workers: the session's shared cluster, tests/e2e/conftest.py, after test_deploy_k8s137
is done with it): cluster.deploy ended with the day-2 agent - salt-master on every
master, salt-minion on every node with keys placed in advance - and the cluster then
looks after itself. What a user checks by hand:

- every master reaches every node over its minion, and holds exactly the inventory's keys;
- hand-made drift (a sysctl, the API load balancer's nginx.conf, containerd's config) is
  put back by the scheduled highstate and reported by ``salt-run cluster.drift``; in
  report-only mode it is reported and left;
- a spare machine, declared in the inventory on the masters and given a minion with the
  script the masters hold, becomes a Ready node through the reactor alone, without a
  restart of anything on the existing nodes;
- a machine outside the inventory that starts a minion is refused, logged, never joined.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.saltenv import failures

pytestmark = [pytest.mark.testbed, pytest.mark.e2e, pytest.mark.slow]

# Its tests remove nodes: they run after every other module on the shared cluster.
DESTROYS_SHARED_CLUSTER = True
NAME = "e2e137"
NODES = ["master1", "master2", "master3", "worker1", "worker2"]
SPARE = "worker3"
MASTERS = ["master1", "master2", "master3"]
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
SALT_BIN = "/opt/brine/salt/bin"
INVENTORY_ON_MASTERS = f"/srv/brine/pillar/clusters/{NAME}/inventory.sls"


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    assert shared_cluster.name == NAME
    return shared_cluster


@pytest.fixture(scope="module")
def deployed(shared_deployed):
    return shared_deployed[0]


def salt(cluster, master, arguments, timeout=180):
    proc = cluster.testbed.run(master, f"{SALT_BIN}/salt {arguments} --out=json --static", timeout=timeout)
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def salt_run(cluster, master, arguments, timeout=180):
    return cluster.testbed.run(master, f"{SALT_BIN}/salt-run {arguments}", timeout=timeout)


def minion(node):
    return f"{node}.{NAME}"


def test_every_master_reaches_every_node_over_its_minion(cluster, deployed):
    for master in MASTERS:
        deadline = time.monotonic() + 120
        while True:
            answers = salt(cluster, master, "'*' test.ping")
            if answers == {minion(n): True for n in NODES} or time.monotonic() > deadline:
                break
            time.sleep(5)
        assert answers == {minion(n): True for n in NODES}, master


def test_masters_hold_exactly_the_inventory_keys(cluster, deployed):
    for master in MASTERS:
        keys = json.loads(cluster.testbed.run(master, f"{SALT_BIN}/salt-key -L --out=json").stdout)
        assert sorted(keys["minions"]) == sorted(minion(n) for n in NODES), master
        assert keys["minions_pre"] == [] and keys["minions_rejected"] == []
        mode = cluster.testbed.run(master, "stat -L -c %a /etc/salt/pki/master/master.pem /srv/brine/state/clusters/"
                                           f"{NAME}/pki/kubernetes/ca.key").stdout.split()
        assert mode == ["400", "600"]


def _runs_the_prebuilt_agent(cluster, node):
    """The agent unpacked from the bundle's archive: its marker, and no trace of pip installing it."""
    listing = cluster.testbed.run(node, "ls -A /opt/brine /opt/brine/salt").stdout.split()
    return (any(name.startswith(".salt-agent-3008.4-cp311-") for name in listing)
            and not [name for name in listing if "requirements" in name or name.startswith(".agent-")])


def test_every_node_runs_the_prebuilt_agent(cluster, deployed):
    assert [node for node in NODES if not _runs_the_prebuilt_agent(cluster, node)] == []


def _drift_lines(cluster, node, since):
    proc = salt_run(cluster, "master1", f"cluster.drift {NAME}")
    return [line for line in proc.stdout.splitlines() if line.startswith("  ") and line.split()[0] >= since
            and node in proc.stdout], proc.stdout


def _wait_for_run(cluster, node, runs_before, timeout=300):
    """The first run after ``runs_before`` that ran (a run the node skipped while another held it does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = salt(cluster, "master1", f"{minion(node)} brine_drift.history limit=100")[minion(node)]
        ran = [run for run in history[runs_before:] if not run.get("skipped")]
        if ran:
            return ran[0]
        time.sleep(5)
    raise AssertionError(f"{node}: no new highstate run in {timeout} s")


LB_CONF = "/etc/kubernetes/brine/lb/nginx.conf"
CONTAINERD = "/etc/containerd/config.toml"
SYSCTL = "net.ipv4.ip_local_reserved_ports"


def test_hand_made_drift_is_put_back_by_the_schedule_and_reported(cluster, deployed):
    run = cluster.testbed.run
    schedule = salt(cluster, "master1", f"{minion('worker1')} schedule.list return_yaml=False")[minion("worker1")]
    assert schedule["brine-highstate"]["function"] == "brine_drift.highstate"
    before = {path: run("worker1", f"sha256sum {path}").stdout for path in (LB_CONF, CONTAINERD)}
    runs = len(salt(cluster, "master1", f"{minion('worker1')} brine_drift.history limit=100")[minion("worker1")])
    run("worker1", f"sysctl -w {SYSCTL}=", check=True)
    run("worker1", f"echo '# edited by hand' >> {LB_CONF} && echo '# edited by hand' >> {CONTAINERD}", check=True)

    # What the schedule runs, started now instead of at the next interval.
    salt(cluster, "master1", f"{minion('worker1')} schedule.run_job brine-highstate")
    record = _wait_for_run(cluster, "worker1", runs)
    assert record["test"] is False and record["failed"] == []
    drifted = {state["id"] for state in record["drifted"]}
    assert {"os-sysctl-applied", "kubernetes-lb-config-managed", "containerd-config-managed"} <= drifted, record
    assert run("worker1", f"sysctl -n {SYSCTL}").stdout.strip() == "30000-32767"
    assert {path: run("worker1", f"sha256sum {path}").stdout for path in (LB_CONF, CONTAINERD)} == before

    report = salt_run(cluster, "master1", f"cluster.drift {NAME}").stdout
    assert re.search(r"worker1: \d+ highstate run\(s\), [1-9]\d* found drift", report), report
    assert "restored: os-sysctl-applied" in report and "restored: kubernetes-lb-config-managed" in report


def test_report_only_mode_reports_and_leaves_drift(cluster, deployed):
    run = cluster.testbed.run
    runs = len(salt(cluster, "master1", f"{minion('worker1')} brine_drift.history limit=100")[minion("worker1")])
    run("worker1", f"sysctl -w {SYSCTL}=", check=True)
    try:
        salt(cluster, "master1", f"{minion('worker1')} brine_drift.highstate test=True", timeout=600)
        record = _wait_for_run(cluster, "worker1", runs)
        assert record["test"] is True
        assert "os-sysctl-applied" in {state["id"] for state in record["drifted"]}
        assert run("worker1", f"sysctl -n {SYSCTL}").stdout.strip() == ""
        assert "reported (test mode, not restored): os-sysctl-applied" in \
            salt_run(cluster, "master1", f"cluster.drift {NAME}").stdout
    finally:
        run("worker1", f"sysctl -w {SYSCTL}=30000-32767")


def _pids(cluster, nodes):
    services = ("kubelet", "containerd", "etcd", "salt-minion", "salt-master")
    found = {}
    for node in nodes:
        for service in services:
            pid = cluster.testbed.run(node, f"systemctl show -p MainPID --value {service}").stdout.strip()
            found[f"{node}/{service}"] = pid
        found[f"{node}/lb"] = cluster.testbed.run(node, "pgrep -o -x nginx").stdout.strip()
    return found


def _bootstrap(cluster, machine, start):
    script = cluster.testbed.run("master1", "cat /srv/brine/minion-bootstrap.sh", check=True).stdout
    proc = cluster.testbed.run(machine, f"cat > /root/minion-bootstrap.sh && sh /root/minion-bootstrap.sh {machine}"
                               + (" --start" if start else ""), input=script, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return re.search(r"minion_fingerprint of \S+: (\S+)", proc.stdout).group(1)


def test_a_new_worker_joins_through_the_reactor_alone(cluster, deployed):
    spare = cluster.spares[SPARE]
    finger = _bootstrap(cluster, SPARE, start=False)
    # The user declares the node - on the deploy side and on every master.
    entry = {**spare, "minion_fingerprint": finger}
    inventory = {"inventory": {"nodes": [*cluster.nodes, entry]}}
    text = yaml.safe_dump(inventory, sort_keys=False)
    with open(cluster.env.cluster_file(NAME, "inventory.sls"), "w", encoding="utf-8") as handle:
        handle.write(text)
    for master in MASTERS:
        cluster.testbed.run(master, f"cat > {INVENTORY_ON_MASTERS}", input=text, check=True)
    pids = _pids(cluster, NODES)

    started = time.monotonic()
    cluster.testbed.run(SPARE, "systemctl start salt-minion", check=True)
    deadline = started + 900
    ready = False
    while time.monotonic() < deadline and not ready:
        proc = cluster.testbed.run("master1", f"{KUBECTL} get node {SPARE} -o json")
        if proc.returncode == 0:
            ready = any(c["type"] == "Ready" and c["status"] == "True"
                        for c in json.loads(proc.stdout)["status"]["conditions"])
        time.sleep(3)
    print(f"\nFIGURE onboarding, minion start to Ready, cluster of 5 -> 6 nodes (s): {time.monotonic() - started:.1f}")
    # The node is Ready during the job's last steps: the job ends a little later.
    jobs = salt_run(cluster, "master1", f"cluster.jobs {NAME}").stdout
    while time.monotonic() < deadline and re.search(rf"node_add-{SPARE}-\w+: (queued|running)", jobs):
        time.sleep(3)
        jobs = salt_run(cluster, "master1", f"cluster.jobs {NAME}").stdout
    assert ready, jobs + cluster.testbed.run("master1", f"cat /srv/brine/state/clusters/{NAME}/jobs/*/log").stdout
    assert re.search(rf"node_add-{SPARE}-\w+: done", jobs), jobs
    assert _pids(cluster, NODES) == pids, "something restarted on an existing node"
    _assert_node_add_report(cluster)
    keys = json.loads(cluster.testbed.run("master2", f"{SALT_BIN}/salt-key -L --out=json").stdout)
    assert minion(SPARE) in keys["minions"]
    assert _runs_the_prebuilt_agent(cluster, SPARE)
    assert cluster.testbed.run(SPARE, "curl -sk https://127.0.0.1:6443/healthz").stdout == "ok"


def _assert_node_add_report(cluster):
    """The onboarding job left its report on the acting master: every step on the
    node it ran on, the timeline embedded, no secret value of the cluster."""
    found = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not found:
        out = salt_run(cluster, "master1", f"cluster.report {NAME}").stdout
        found = re.search(rf"\S+/jobs/\d{{8}}T\d{{6}}Z-node_add-{SPARE}-\w+/report\.html", out)
        time.sleep(0 if found else 2)
    assert found, out
    page = cluster.testbed.run("master1", f"cat {found.group(0)}", check=True).stdout
    for step in ("os-ready", "runtime-ready", "artifacts-prefetched", "kubernetes-installed", "joined"):
        assert f"data-node='{SPARE}' data-step='{step}'" in page, step
    for step in ("token-valid", "nodes-ready"):
        assert f"data-node='master1' data-step='{step}'" in page, step
    assert "id='state'>done<" in page and "data:image/svg+xml;base64," in page
    secrets = cluster.testbed.run(
        "master1", f"find /srv/brine/state/clusters/{NAME} -path '*secrets*' -type f -exec cat {{}} +").stdout
    values = set(re.findall(r"[A-Za-z0-9+/=._$-]{16,}", secrets))  # the bootstrap token, registry password ...
    assert values, "no secret values found to look for"
    assert not [v for v in values if v in page]


def test_a_minion_outside_the_inventory_is_refused_and_never_joined(cluster, deployed):
    _bootstrap(cluster, "rogue1", start=True)
    deadline = time.monotonic() + 120
    log = ""
    while time.monotonic() < deadline:
        log = salt_run(cluster, "master1", f"cluster.onboarding {NAME}").stdout
        if minion("rogue1") in log:
            break
        time.sleep(3)
    assert re.search(rf"{minion('rogue1')}: refused \(not in the inventory\)", log), log
    time.sleep(10)
    keys = json.loads(cluster.testbed.run("master1", f"{SALT_BIN}/salt-key -L --out=json").stdout)
    assert minion("rogue1") in keys["minions_pre"] and minion("rogue1") not in keys["minions"]
    assert cluster.testbed.run("master1", f"{KUBECTL} get node rogue1").returncode != 0
    assert log.count(f"{minion('rogue1')}: refused") == 1, "a refusal is logged once, not at every retry"


def remove(cluster, node, timeout=900):
    pillar = json.dumps({"cluster": NAME, "node": node})
    proc = salt_run(cluster, "master1" if node != "master1" else "master2",
                    f"state.orchestrate cluster.node_remove pillar='{pillar}' --out=json", timeout=timeout)
    data = json.loads(proc.stdout)["data"]
    steps = {s["__id__"]: s for host in data.values() if isinstance(host, dict) for s in host.values()
             if isinstance(s, dict) and "__id__" in s}
    return proc.returncode, steps, proc.stdout


def test_removing_a_worker_takes_it_out_everywhere(cluster, deployed):
    code, steps, out = remove(cluster, SPARE)
    assert code == 0 and not failures(steps), out[-5000:]
    assert cluster.testbed.run("master1", f"{KUBECTL} get node {SPARE}").returncode != 0
    for master in MASTERS:
        keys = json.loads(cluster.testbed.run(master, f"{SALT_BIN}/salt-key -L --out=json").stdout)
        assert minion(SPARE) not in keys["minions"] + keys["minions_pre"], master
        inventory = yaml.safe_load(cluster.testbed.run(master, f"cat {INVENTORY_ON_MASTERS}").stdout)
        assert SPARE not in [n["name"] for n in inventory["inventory"]["nodes"]], master
    # Stopped ("failed" when salt-minion stopped itself from inside its own job) and disabled.
    assert "active" not in cluster.testbed.run(SPARE, "systemctl is-active kubelet salt-minion").stdout.split()
    assert cluster.testbed.run(SPARE, "systemctl is-enabled kubelet").stdout.strip() == "disabled"


def _etcd(cluster, node, *args):
    pki = "/etc/kubernetes/pki"
    return cluster.testbed.run(node, f"etcdctl --endpoints=https://127.0.0.1:2379 --cacert={pki}/etcd/ca.crt "
                                     f"--cert={pki}/apiserver-etcd-client.crt --key={pki}/apiserver-etcd-client.key "
                                     + " ".join(args))


def test_removing_a_master_keeps_etcd_healthy_and_the_lb_correct(cluster, deployed):
    code, steps, out = remove(cluster, "master3")
    assert code == 0 and not failures(steps), out[-5000:]
    members = json.loads(_etcd(cluster, "master1", "member list -w json").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["master1", "master2"]
    health = json.loads(_etcd(cluster, "master1", "endpoint health --cluster -w json").stdout)
    assert len(health) == 2 and all(h["health"] for h in health)
    conf = cluster.testbed.run("worker1", f"cat {LB_CONF}").stdout
    upstreams = re.findall(r"server (\S+):6443", conf)
    assert sorted(set(upstreams)) == [cluster.testbed.address("master1"), cluster.testbed.address("master2")], conf
    deadline = time.monotonic() + 120
    while cluster.testbed.run("worker1", "curl -sk https://127.0.0.1:6443/healthz").stdout != "ok":
        assert time.monotonic() < deadline, "worker1's load balancer does not answer after master3 left"
        time.sleep(3)
    nodes = json.loads(cluster.testbed.run("master1", f"{KUBECTL} get nodes -o json").stdout)["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["master1", "master2", "worker1", "worker2"]


def test_a_removal_that_would_break_etcd_quorum_is_refused_before_any_change(cluster, deployed):
    cluster.testbed.run("master2", "systemctl stop etcd", check=True)
    try:
        code, steps, out = remove(cluster, "master1")
        assert code != 0
        quorum = steps["node-remove-etcd-quorum-kept"]
        assert quorum["result"] is False and "refused" in json.dumps(quorum), out[-3000:]
        assert "node-remove-drained" not in steps or not steps["node-remove-drained"].get("changes")
    finally:
        cluster.testbed.run("master2", "systemctl start etcd")
    deadline = time.monotonic() + 180
    while (proc := cluster.testbed.run("master1", f"{KUBECTL} get node master1 -o json")).returncode != 0:
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(3)
    assert not json.loads(proc.stdout)["spec"].get("unschedulable")
