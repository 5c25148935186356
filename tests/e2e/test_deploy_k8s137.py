"""
cluster.deploy end to end with real Kubernetes v1.37.2 (built by `make k8s-artifacts`)
on the testbed: 3 masters + 2 workers, kube-proxy iptables, the host-gw network,
CoreDNS with no upstream, the day-2 agent - the session's shared cluster
(tests/e2e/conftest.py), which test_day2_cluster takes on after this module. From bare
nodes the deploy ends with every node Ready; then what a user would check by hand:

- the control plane runs as static pods on every master, the API load balancer on
  every node, and ``/readyz`` answers through 127.0.0.1:6443 on every worker;
- with master1's API server stopped, 100 of 100 requests from each worker through
  127.0.0.1:6443 still succeed;
- CoreDNS answers ``kubernetes.default`` from a pod; a pod on one worker reaches a pod
  on the other;
- kube-system/brine-cluster records the settings and holds no secret;
- a second deploy changes nothing;
- a deploy whose worker loses its sshd mid-join fails naming the node, and the next
  run converges.
"""

from __future__ import annotations

import base64
import html.parser
import io
import json
import os
import re
import threading
import time

import pytest
from PIL import Image

from tests.e2e import toolbox
from tests.saltenv import changed_states, failures, step_table

pytestmark = [pytest.mark.testbed, pytest.mark.e2e, pytest.mark.slow]

NAME = "e2e137"
MASTERS = ["master1", "master2", "master3"]
WORKERS = ["worker1", "worker2"]
KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"
FIGURES: dict[str, str] = {}


def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"FIGURE {name}: {value}")


@pytest.fixture(scope="module")
def cluster(shared_cluster):
    """The session's shared 1.37 cluster (tests/e2e/conftest.py)."""
    assert shared_cluster.name == NAME
    return shared_cluster


@pytest.fixture(scope="module")
def deployed(shared_deployed):
    steps, took = shared_deployed
    figure("deploy from bare nodes, 3 masters + 2 workers (s)", f"{took:.1f}")
    figure("steps (s)", step_table(steps))
    return steps


def kubectl(cluster, command: str, check: bool = True) -> str:
    proc = cluster.testbed.run("master1", f"{KUBECTL} {command}", timeout=120)
    if check:
        assert proc.returncode == 0, f"kubectl {command}: {proc.stderr}"
    return proc.stdout


def test_every_node_is_ready(cluster, deployed):
    nodes = json.loads(kubectl(cluster, "get nodes -o json"))["items"]
    ready = {n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
             for n in nodes}
    assert ready == dict.fromkeys(MASTERS + WORKERS, "True")
    versions = {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes}
    assert versions == {"v1.37.2"}


def pods(cluster) -> list[dict]:
    return json.loads(kubectl(cluster, "get pods -A -o json"))["items"]


def test_control_plane_runs_as_static_pods_on_every_master(cluster, deployed):
    running = {(p["metadata"]["name"]) for p in pods(cluster) if p["status"]["phase"] == "Running"}
    for master in MASTERS:
        for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            assert f"{component}-{master}" in running
    # each API server binds its node's address only: 127.0.0.1:6443 is the load balancer's
    listeners = cluster.testbed.run("master1", "ss -Hltnp 'sport = :6443'").stdout
    assert "10.84.0.11:6443" in listeners and '"kube-apiserver"' in listeners
    assert "127.0.0.1:6443" in listeners and '"nginx"' in listeners


def test_every_node_runs_its_api_load_balancer(cluster, deployed):
    lb = {p["spec"]["nodeName"]: p for p in pods(cluster) if p["metadata"]["name"].startswith("brine-api-lb-")}
    assert set(lb) == set(MASTERS + WORKERS)
    for node, pod in lb.items():
        assert pod["status"]["phase"] == "Running", node
        assert all(c["ready"] for c in pod["status"]["containerStatuses"]), node
    for worker in WORKERS:
        proc = cluster.testbed.run(worker, "curl -sk https://127.0.0.1:6443/readyz; echo; "
                                           "curl -s http://127.0.0.1:8081/healthz")
        assert proc.stdout.split() == ["ok", "ok"], (worker, proc.stdout, proc.stderr)
        # kubelet and kube-proxy talk to the API through it
        conf = cluster.testbed.run(worker, "grep server: /etc/kubernetes/kubelet.conf").stdout
        assert "https://127.0.0.1:6443" in conf


def test_api_answers_through_every_worker_with_master1_api_server_stopped(cluster, deployed):
    manifest = "/etc/kubernetes/manifests/kube-apiserver.yaml"
    cluster.testbed.run("master1", f"mv {manifest} /root/kube-apiserver.yaml.aside", check=True)
    try:
        deadline = time.monotonic() + 120
        while cluster.testbed.run("master1", "ss -Hltn 'sport = :6443' | grep -q 10.84.0.11").returncode == 0:
            assert time.monotonic() < deadline, "master1's API server did not stop"
            time.sleep(1)
        for worker in WORKERS:
            started = time.monotonic()
            proc = cluster.testbed.run(
                worker, "ok=0; for i in $(seq 100); do "
                        "[ \"$(curl -sk -m 5 https://127.0.0.1:6443/readyz)\" = ok ] && ok=$((ok+1)); done; echo $ok",
                timeout=600)
            assert proc.stdout.strip() == "100", (worker, proc.stdout, proc.stderr)
            figure(f"{worker}: 100 requests through 127.0.0.1:6443 with master1 down (s)",
                   f"{time.monotonic() - started:.1f}")
        health = cluster.testbed.run("worker1", "curl -s http://127.0.0.1:8081/healthz").stdout
        assert health.strip() == "ok"
    finally:
        cluster.testbed.run("master1", f"mv /root/kube-apiserver.yaml.aside {manifest}", check=True)
    deadline = time.monotonic() + 180
    while cluster.testbed.run("master1", "curl -sk -m 3 https://10.84.0.11:6443/readyz").stdout != "ok":
        assert time.monotonic() < deadline, "master1's API server did not come back"
        time.sleep(2)


@pytest.fixture(scope="module")
def toolbox_image(cluster, deployed):
    with open(f"{cluster.env.state}/clusters/{NAME}/secrets/registry.json", encoding="utf-8") as handle:
        credentials = json.load(handle)
    return toolbox.push(cluster.testbed, "10.84.0.1:5000", credentials)


def run_pod(cluster, name: str, image: str, node: str, command: str) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": node, "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": image, "command": ["/bin/sh", "-c", command]}]}}
    proc = cluster.testbed.run("master1", f"{KUBECTL} apply -f -", input=json.dumps(pod), timeout=60)
    assert proc.returncode == 0, proc.stderr


def wait_pod(cluster, name: str, phase: set[str], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        pod = json.loads(kubectl(cluster, f"-n default get pod {name} -o json"))
        if pod["status"].get("phase") in phase:
            return pod
        assert time.monotonic() < deadline, json.dumps(pod["status"])[:2000]
        time.sleep(2)


def test_coredns_answers_kubernetes_default_from_a_pod(cluster, toolbox_image):
    run_pod(cluster, "dns-probe", toolbox_image, "worker1", "nslookup kubernetes.default.svc.cluster.local")
    wait_pod(cluster, "dns-probe", {"Succeeded", "Failed"})
    log = kubectl(cluster, "-n default logs dns-probe")
    assert "10.96.0.1" in log, log


def test_a_pod_on_one_worker_reaches_a_pod_on_the_other(cluster, toolbox_image):
    run_pod(cluster, "web", toolbox_image, "worker1",
            "echo brine-pod-network > /www/index.html && exec httpd -f -p 8080 -h /www")
    web = wait_pod(cluster, "web", {"Running"})
    address = web["status"]["podIP"]
    assert address.startswith("10.244.")
    # busybox-static's wget crashes in Debian's build (static glibc): speak HTTP with nc
    run_pod(cluster, "client", toolbox_image, "worker2",
            f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} 8080")
    wait_pod(cluster, "client", {"Succeeded", "Failed"})
    response = kubectl(cluster, "-n default logs client")
    assert response.startswith("HTTP/1.") and response.rstrip().endswith("brine-pod-network"), response


def test_the_record_holds_the_settings_and_no_secret(cluster, deployed):
    record = json.loads(kubectl(cluster, "-n kube-system get configmap brine-cluster -o json"))["data"]
    assert record["kubernetes_version"] == "v1.37.2"
    assert record["kubeadm_api"] == "kubeadm.k8s.io/v1beta4"
    assert record["network_plugin"] == "host-gw" and record["kube_proxy_mode"] == "iptables"
    assert json.loads(record["nodes"]) == {**dict.fromkeys(MASTERS, "master,etcd"), **dict.fromkeys(WORKERS, "worker")}
    assert record["bundle_id"] and record["deployed_at"]
    text = json.dumps(record)
    state = f"{cluster.env.state}/clusters/{NAME}"
    with open(f"{state}/secrets/bootstrap-token", encoding="ascii") as handle:
        token = handle.read().strip()
    with open(f"{state}/secrets/registry.json", encoding="utf-8") as handle:
        password = json.load(handle)["password"]
    for secret in (token, token.split(".")[1], password, "PRIVATE KEY", "BEGIN"):
        assert secret not in text


def test_secret_files_on_nodes_are_0600(cluster, deployed):
    listing = cluster.testbed.run("master1", "stat -c '%a %n' /etc/kubernetes/pki/*.key "
                                             "/etc/kubernetes/brine/kubeadm.yaml /etc/kubernetes/admin.conf").stdout
    modes = dict(reversed(line.split(" ", 1)) for line in listing.splitlines())
    assert modes and set(modes.values()) == {"600"}, modes
    worker = cluster.testbed.run("worker1", "stat -c '%a' /etc/kubernetes/brine/kubeadm.yaml").stdout.strip()
    assert worker == "600"


class ReportCells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.steps, self.images = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("class") == "cell":
            self.cells.add((attrs["data-node"], attrs["data-step"]))
        if tag == "tr" and attrs.get("class") == "step":
            self.steps.append(attrs["data-step"])
        if tag == "img":
            self.images.append(attrs["src"])


def test_the_deploy_leaves_a_report_with_every_node_and_step_and_no_secret(cluster, deployed):
    proc = cluster.env.salt_run("cluster.report", NAME)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    path = proc.stdout.strip().splitlines()[-1]
    with open(path, encoding="utf-8") as handle:
        page = handle.read()
    cells = ReportCells()
    cells.feed(page)
    plan = ["validate", "secrets", "reach", "preflight", "bundle", "os", "runtime", "prefetch", "etcd",
            "kubernetes", "init", "masters", "workers", "network", "record", "agent"]
    assert cells.steps == plan
    assert "<span id='state'>done</span>" in page
    for node in MASTERS + WORKERS:
        for step in ("os", "runtime", "prefetch", "kubernetes", "network", "agent"):
            assert (node, step) in cells.cells, (node, step)
    assert {("master1", "init"), ("master2", "masters"), ("master3", "masters"), ("worker1", "workers"),
            ("worker2", "workers"), ("deploy", "bundle"), ("deploy", "validate")} <= cells.cells
    state = os.path.join(cluster.env.state, "clusters", NAME)
    with open(os.path.join(state, "secrets", "bootstrap-token"), encoding="utf-8") as handle:
        secrets = [handle.read().strip()]
    with open(os.path.join(state, "secrets", "registry.json"), encoding="utf-8") as handle:
        secrets.append(json.load(handle)["password"])
    for key in ("pki/kubernetes/ca.key", "pki/kubernetes/sa.key", "pki/salt/master.pem", "pki/etcd/ca.key"):
        with open(os.path.join(state, key), encoding="utf-8") as handle:
            secrets += [line for line in handle.read().splitlines() if "-----" not in line and len(line) > 40][:3]
    assert not [secret for secret in secrets if secret in page]
    png = base64.b64decode(cells.images[0].split(",", 1)[1])
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size[0] >= 1000
    assert os.path.isfile(os.path.join(os.path.dirname(path), "timeline.png"))
    # While it ran: one progress line per step and node, then the summary table.
    with open(os.path.join(cluster.env.root, "orchestrate-01-cluster.deploy.err"), encoding="utf-8") as handle:
        progress = handle.read()
    for node in MASTERS + WORKERS:
        assert f"[brine] os         {node:<10} ok" in progress, progress[-3000:]
    assert "step         result        changed  seconds  nodes" in progress
    assert re.search(r"^total\s+\d+\s+[\d.]+$", progress, re.M)


def test_a_second_deploy_changes_nothing(cluster, deployed):
    started = time.monotonic()
    code, steps, _ = cluster.env.orchestrate("cluster.deploy", {"cluster": NAME}, timeout=3600)
    figure("second deploy on the finished cluster (s)", f"{time.monotonic() - started:.1f}")
    figure("second deploy steps (s)", step_table(steps))
    assert code == 0
    changed = {sid: changed_states(s) or s.get("changes") for sid, s in steps.items() if s.get("changes")}
    assert changed == {}, changed


def test_a_join_cut_off_midway_fails_clearly_and_the_next_run_converges(cluster, deployed):
    """worker2 is taken out and reset; the deploy that joins it again loses worker2's sshd
    while kubeadm join runs there; the run fails naming worker2; the next run converges.
    (worker2's day-2 agent is stopped first: its scheduled highstate would join it back by itself.)"""
    cluster.testbed.run("worker2", "systemctl stop salt-minion", check=True)
    kubectl(cluster, "delete node worker2 --wait=true")
    cluster.testbed.run("worker2", "kubeadm reset --force >/dev/null 2>&1; rm -rf /etc/cni/net.d/*", check=True,
                        timeout=300)

    def cut_sshd_when_join_runs() -> None:
        # Inside worker2 (not over SSH): as soon as kubeadm join has written the bootstrap
        # kubeconfig (its kubelet-start phase), stop sshd, kill every SSH session and kubeadm.
        proc = cluster.testbed.run(
            "worker2", "while [ ! -e /etc/kubernetes/bootstrap-kubelet.conf ]; do sleep 0.05; done; "
                       "systemctl stop ssh.socket ssh.service 2>/dev/null; pkill -KILL -x sshd; "
                       "pkill -KILL -x kubeadm; echo cut", timeout=900)
        cut.append(proc.stdout.strip())

    cut: list[str] = []
    cutter = threading.Thread(target=cut_sshd_when_join_runs, daemon=True)
    cutter.start()
    code, steps, _ = cluster.env.orchestrate("cluster.deploy", {"cluster": NAME}, timeout=3600)
    cutter.join()
    assert cut == ["cut"], f"kubeadm join never reached kubelet-start on worker2: {cut}"
    assert code != 0
    # the first step that failed is the workers' join, and it names worker2
    failed = [s for s in sorted(steps.values(), key=lambda s: s["__run_num__"]) if s["result"] is False]
    assert failed and failed[0]["__id__"] == "cluster-workers-joined", failures(steps)
    assert "worker2" in failures(steps)["cluster-workers-joined"]
    assert cluster.testbed.run("worker2", "pgrep -x sshd").returncode != 0, "sshd came back by itself"
    cluster.testbed.run("worker2", "systemctl start ssh.service", check=True)
    started = time.monotonic()
    code, steps, _out = cluster.env.orchestrate("cluster.deploy", {"cluster": NAME}, timeout=3600)
    bad = failures(steps)
    assert code == 0 and not bad, json.dumps(bad, indent=1)[-6000:]
    figure("re-run after the cut join (s)", f"{time.monotonic() - started:.1f}")
    nodes = json.loads(kubectl(cluster, "get nodes -o json"))["items"]
    assert "worker2" in {n["metadata"]["name"] for n in nodes}
