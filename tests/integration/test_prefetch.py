"""
Prefetch on the testbed: every node gets the binaries and images its roles
need, verified against the served bundle's index, all nodes at once; a second
run fetches nothing; a node that cannot fetch an artifact fails naming it.
"""

import re

import pytest

from tests.clusters import TestCluster
from tests.saltenv import SaltEnv

pytestmark = [pytest.mark.testbed, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, offline_bundle):
    env = SaltEnv(str(tmp_path_factory.mktemp("prefetch")))
    test_cluster = TestCluster(env, "prefetcht", third_octet=81, masters=1, workers=1)
    test_cluster.up()
    try:
        assert env.salt_run("cluster.secrets", test_cluster.name).returncode == 0
        served = env.salt_ssh(test_cluster.minion("deploy"), "state.apply", "bundle_server", "--state-output=terse")
        assert served.returncode == 0, served.stdout[-3000:]
        yield test_cluster
    finally:
        test_cluster.down()


def prefetch(cluster):
    targets = ",".join(cluster.minion(n) for n in ("master1", "worker1"))
    return cluster.env.salt_ssh("-L", targets, "state.apply", "runtime,prefetch")


@pytest.fixture(scope="module")
def first_run(cluster):
    proc = prefetch(cluster)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc


def images(cluster, node):
    out = cluster.testbed.run(node, "ctr -n k8s.io images ls -q").stdout.split()
    return {name for name in out if not name.startswith("sha256:")}


def test_each_node_gets_what_its_roles_need(cluster, first_run):
    # by their names in the private registry: those kubeadm (imageRepository), the sandbox
    # image and the API load balancer use
    master, worker = images(cluster, "master1"), images(cluster, "worker1")
    registry = "10.81.0.1:5000"
    assert {f"{registry}/kube-apiserver:v1.37.2", f"{registry}/coredns/coredns:v1.14.6",
            f"{registry}/pause:3.10.2", f"{registry}/kube-proxy:v1.37.2", f"{registry}/library/nginx:1.22.1"} <= master
    assert {f"{registry}/library/nginx:1.22.1", f"{registry}/pause:3.10.2", f"{registry}/kube-proxy:v1.37.2"} <= worker
    assert f"{registry}/kube-apiserver:v1.37.2" not in worker


def test_binaries_are_cached_and_verified(cluster, first_run):
    listing = cluster.testbed.run("master1", "cd /var/cache/brine/binaries && sha256sum */*/*").stdout
    names = {line.split()[1].split("/")[0] for line in listing.splitlines()}
    assert names == {"kubeadm", "kubelet", "kubectl", "crictl", "cni-plugins"}
    worker = cluster.testbed.run("worker1", "ls /var/cache/brine/binaries").stdout.split()
    assert sorted(worker) == ["cni-plugins", "crictl", "kubeadm", "kubelet"]


def test_progress_names_each_artifact(first_run):
    assert re.search(r"image registry\.k8s\.io/pause:3\.10\.2: [\d.]+ MiB archive in [\d.]+ s", first_run.stdout)
    assert re.search(r"binary kubeadm v1\.37\.2: [\d.]+ MiB in [\d.]+ s", first_run.stdout)


def test_a_second_run_fetches_nothing(cluster, first_run):
    proc = prefetch(cluster)
    assert proc.returncode == 0
    assert "changed=" not in proc.stdout, proc.stdout[-3000:]
    # master1 (master, etcd): 5 binaries + 7 images; worker1: 4 binaries + 3 images
    assert "all 12 artifacts of bundle" in proc.stdout and "all 7 artifacts of bundle" in proc.stdout


def test_a_node_that_cannot_fetch_fails_naming_the_artifact(cluster, first_run):
    served = "/srv/brine/bundles/current/binaries/kubelet"
    cluster.testbed.run("deploy", f"mv {served} /srv/brine/kubelet.aside", check=True)
    cluster.testbed.run("worker1", "rm -rf /var/cache/brine/binaries/kubelet", check=True)
    try:
        proc = cluster.env.salt_ssh(cluster.minion("worker1"), "state.apply", "prefetch")
        assert proc.returncode != 0
        assert re.search(r"binary kubelet v1\.37\.2: HTTP Error 404", proc.stdout), proc.stdout[-3000:]
    finally:
        cluster.testbed.run("deploy", f"mv /srv/brine/kubelet.aside {served}", check=True)
