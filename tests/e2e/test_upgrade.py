"""
cluster.upgrade end to end with real Kubernetes: a 3 masters + 2 workers cluster
deployed at v1.36.3 (the day-2 agent on), a workload serving through a Service, then
the pillar moved to v1.37.2 and the 1.37 bundle brought to the deploy node - what a
user would check by hand:

- a downgrade is refused at the plan, before anything changes on any node, and
  ``cluster.deploy`` refuses to deploy v1.37.2 over the running v1.36.3;
- the upgrade moves every API server, controller manager, scheduler, kubelet,
  kube-proxy and CoreDNS to what kubeadm v1.37.2 ships, one master then one worker at
  a time, every node ends Ready and schedulable, the record says v1.37.2;
- the Service answers throughout (a request every 0.2 s from master1; measured);
- drift correction is paused while it runs and runs again after;
- the upgrade leaves its report; a second run changes nothing.

The ``upgrade`` lane (``make test-upgrade``): it needs both release lines built
(``make bundle RELEASE=1.36`` and ``RELEASE=1.37``); not part of ``make test``.
"""

from __future__ import annotations

import itertools
import json
import os
import time

import pytest

from tests.clusters import TestCluster
from tests.e2e import toolbox
from tests.saltenv import SaltEnv, changed_states, failures, step_table

pytestmark = [pytest.mark.testbed, pytest.mark.e2e, pytest.mark.slow, pytest.mark.upgrade]

NAME = "e2eupg"
OCTET = 88
FROM, TO = "1.36.3", "1.37.2"
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
NODES = ["master1", "master2", "master3", "worker1", "worker2"]
PROBE_LOG = "/root/upgrade-probe.log"
FIGURES: dict[str, str] = {}


def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"FIGURE {name}: {value}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, real_bundle_136, real_bundle):
    env = SaltEnv(str(tmp_path_factory.mktemp(NAME)))
    test_cluster = TestCluster(env, NAME, third_octet=OCTET, masters=3, workers=2, kubernetes="built",
                               env_overrides={"kubernetes_version": FROM})
    test_cluster.up()
    try:
        yield test_cluster
    finally:
        test_cluster.down()


def kubectl(cluster, command: str, check: bool = True) -> str:
    proc = cluster.testbed.run("master1", f"{KUBECTL} {command}", timeout=180)
    if check:
        assert proc.returncode == 0, f"kubectl {command}: {proc.stderr}"
    return proc.stdout


def set_version(cluster, version: str) -> None:
    def change(data: dict) -> None:
        data["env"]["kubernetes_version"] = version

    cluster.env.edit(NAME, "env.sls", change)


@pytest.fixture(scope="module")
def deployed(cluster):
    started = time.monotonic()
    code, steps, out = cluster.env.orchestrate("cluster.deploy", {"cluster": NAME}, timeout=3600)
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-8000:] or out[-5000:]
    figure(f"deploy at v{FROM}, 3 masters + 2 workers, agent on (s)", f"{time.monotonic() - started:.1f}")
    return steps


def web_objects(image: str) -> list[dict]:
    labels = {"app": "web"}
    pod = {"metadata": {"labels": labels},
           "spec": {"terminationGracePeriodSeconds": 30,
                    "containers": [{"name": "web", "image": image,
                                    "command": ["/bin/sh", "-c", "mkdir -p /www && echo brine-upgrade > "
                                                "/www/index.html && exec httpd -f -p 8080 -h /www"],
                                    "ports": [{"containerPort": 8080}],
                                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                                    # served on while the endpoint's removal reaches every node
                                    "lifecycle": {"preStop": {"exec": {"command": ["sleep", "5"]}}}}]}}
    return [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels}, "template": pod,
                  "strategy": {"rollingUpdate": {"maxUnavailable": 0}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]


@pytest.fixture(scope="module")
def workload(cluster, deployed):
    with open(f"{cluster.env.state}/clusters/{NAME}/secrets/registry.json", encoding="utf-8") as handle:
        credentials = json.load(handle)
    image = toolbox.push(cluster.testbed, f"10.{OCTET}.0.1:5000", credentials)
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": web_objects(image)})
    proc = cluster.testbed.run("master1", f"{KUBECTL} apply -f -", input=manifest, timeout=60)
    assert proc.returncode == 0, proc.stderr
    kubectl(cluster, "-n default rollout status deployment/web --timeout=300s")
    address = kubectl(cluster, "-n default get service web -o jsonpath={.spec.clusterIP}").strip()
    # Testbed nodes have no default route (no way out), and a host connects to a
    # Service address only when some route covers it (kube-proxy's iptables rules
    # apply after the route lookup); a data centre's default route stands for this one.
    cluster.testbed.run("master1", "ip route replace 10.96.0.0/16 dev eth0", timeout=30)
    deadline = time.monotonic() + 60
    while "brine-upgrade" not in cluster.testbed.run("master1", f"curl -s -m 2 http://{address}/").stdout:
        assert time.monotonic() < deadline, "the web Service does not answer from master1"
        time.sleep(2)
    return address


def test_a_downgrade_is_refused_before_anything_changes(cluster, deployed):
    set_version(cluster, "1.20.2")
    try:
        code, steps, _out = cluster.env.orchestrate("cluster.upgrade", {"cluster": NAME}, timeout=900)
    finally:
        set_version(cluster, FROM)
    assert code != 0
    plan = steps["cluster-upgrade-planned"]
    assert plan["result"] is False and "cannot be downgraded" in plan["comment"], plan["comment"]
    assert "env.kubernetes_version: v1.20.2" in plan["comment"]
    assert not steps["cluster-drift-correction-paused"]["result"], "a step after the plan ran"
    for node in NODES:
        assert cluster.testbed.run(node, "test -e /var/lib/brine/drift.paused").returncode == 1, node


def test_the_deploy_refuses_a_new_version_over_a_running_cluster(cluster, deployed):
    set_version(cluster, TO)
    try:
        proc = cluster.env.deploy(NAME, until="preflight", timeout=900)
    finally:
        set_version(cluster, FROM)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert f"runs other versions than env.kubernetes_version v{TO}" in text, text[-3000:]
    assert "cluster.upgrade" in text


def probe_start(cluster, address: str) -> None:
    loop = (f"rm -f /root/probe.stop; while [ ! -e /root/probe.stop ]; do t=$(date +%s.%N); "
            f"if curl -s -m 2 http://{address}/ | grep -q brine-upgrade; then echo \"$t ok\"; "
            f"else echo \"$t fail\"; fi; sleep 0.2; done")
    cluster.testbed.run("master1", f"setsid sh -c '{loop}' </dev/null >{PROBE_LOG} 2>&1 &", timeout=30)


def probe_stop(cluster) -> list[tuple[float, bool]]:
    cluster.testbed.run("master1", "touch /root/probe.stop; sleep 3", timeout=30)
    lines = cluster.testbed.run("master1", f"cat {PROBE_LOG}").stdout.split()
    return [(float(t), what == "ok") for t, what in zip(lines[::2], lines[1::2], strict=True)]


@pytest.fixture(scope="module")
def upgraded(cluster, workload):
    set_version(cluster, TO)
    probe_start(cluster, workload)
    started = time.monotonic()
    try:
        code, steps, out = cluster.env.orchestrate("cluster.upgrade", {"cluster": NAME}, timeout=5400)
    finally:
        probe = probe_stop(cluster)
    took = time.monotonic() - started
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-8000:] or out[-5000:]
    figure(f"upgrade v{FROM} -> v{TO}, 3 masters + 2 workers (s)", f"{took:.1f}")
    figure("upgrade steps (s)", step_table(steps))
    failed = [t for t, ok in probe if not ok]
    figure("Service requests during the upgrade (attempted / failed)", f"{len(probe)} / {len(failed)}")
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(probe)]
    figure("longest time between two answered requests (s)", f"{max(gaps, default=0):.1f}")
    return steps, probe


def test_every_component_runs_the_new_version(cluster, upgraded):
    nodes = json.loads(kubectl(cluster, "get nodes -o json"))["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == \
        dict.fromkeys(NODES, f"v{TO}")
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", node["metadata"]["name"]
        assert not node["spec"].get("unschedulable"), f"{node['metadata']['name']} left cordoned"
        assert "brine.io/cordoned-for-upgrade" not in node["metadata"].get("annotations", {})
    pods = json.loads(kubectl(cluster, "-n kube-system get pods -o json"))["items"]
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        images = {p["spec"]["containers"][0]["image"] for p in pods
                  if p["metadata"].get("labels", {}).get("component") == component}
        assert images and all(i.endswith(f":v{TO}") for i in images), (component, images)
    proxy = kubectl(cluster, "-n kube-system get daemonset kube-proxy -o jsonpath={..image}")
    assert proxy.endswith(f":v{TO}"), proxy
    dns = kubectl(cluster, "-n kube-system get deployment coredns -o jsonpath={..image}")
    assert dns.endswith(":v1.14.6"), dns
    for node in NODES:
        assert cluster.testbed.run(node, "kubelet --version").stdout.split()[-1] == f"v{TO}", node
        assert cluster.testbed.run(node, "kubeadm version -o short").stdout.strip() == f"v{TO}", node
    record = json.loads(kubectl(cluster, "-n kube-system get configmap brine-cluster -o json"))["data"]
    assert record["kubernetes_version"] == f"v{TO}"


def test_the_workload_answered_throughout(cluster, upgraded):
    _, probe = upgraded
    assert len(probe) > 100, "the probe did not run through the upgrade"
    failed = [t for t, ok in probe if not ok]
    assert not failed, f"{len(failed)} of {len(probe)} requests failed, first at {failed[0]:.1f}"


def test_drift_correction_was_paused_and_runs_again(cluster, upgraded):
    for node in NODES:
        assert cluster.testbed.run(node, "test -e /var/lib/brine/drift.paused").returncode == 1, node
    # the masters hold the new pillar: a node's drift run now keeps v1.37.2
    proc = cluster.testbed.run("master1", "/opt/brine/salt/bin/salt-call --out=json brine_drift.highstate",
                               timeout=900)
    record = json.loads(proc.stdout)["local"]
    assert not record.get("skipped") and not record["failed"], record
    assert cluster.testbed.run("worker1", "kubelet --version").stdout.split()[-1] == f"v{TO}"


def test_the_upgrade_leaves_its_report(cluster, upgraded):
    proc = cluster.env.salt_run("cluster.report", NAME)
    assert proc.returncode == 0, proc.stderr
    path = proc.stdout.strip().splitlines()[-1].split()[-1]
    assert "upgrade" in path and os.path.isfile(path), proc.stdout
    with open(path, encoding="utf-8") as handle:
        html = handle.read()
    for node in NODES:
        assert node in html
    for step in ("plan", "pause", "prefetch", "masters", "workers", "agent"):
        assert step in html


def test_a_second_upgrade_changes_nothing(cluster, upgraded):
    started = time.monotonic()
    code, steps, _ = cluster.env.orchestrate("cluster.upgrade", {"cluster": NAME}, timeout=3600)
    figure("second upgrade on the upgraded cluster (s)", f"{time.monotonic() - started:.1f}")
    assert code == 0
    changed = {sid: changed_states(s) or s.get("changes") for sid, s in steps.items() if s.get("changes")}
    assert changed == {}, changed
    assert "nothing to upgrade" in steps["cluster-upgrade-planned"]["comment"]
