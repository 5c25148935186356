"""
The real kubeadm of each config API version reads Brine's rendered configuration
strictly (`kubeadm config validate`: unknown fields are errors): 1.37 (v1beta4), 1.36
(v1beta3, kubeadm only is built for it) and 1.20.2 (v1beta2). Needs the binaries
`make k8s-artifacts` builds, so it runs with the real lanes.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.kubeadm_cases import REPO_ROOT, cluster, docs_of

pytestmark = [pytest.mark.slow]
K8S_CACHE = Path("/var/cache/brine/k8s")


@pytest.fixture(scope="session")
def kubeadm_binaries():
    """kubeadm 1.37 (v1beta4), 1.36 (still reads v1beta3; only kubeadm is built) and 1.20.2
    (v1beta2), built from Go modules and Debian's source if absent."""
    build = str(REPO_ROOT / "tests/k8s/build.sh")
    for argv, extra in (([build, "k8s", "debian"], {"K8S_VERSIONS": "v1.37.2"}),
                        ([build, "k8s"], {"K8S_VERSIONS": "v1.36.3", "K8S_ONLY": "kubeadm"})):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=5400, check=False,
                              env={**os.environ, **extra})
        assert proc.returncode == 0, proc.stderr[-3000:]
    return {"v1beta4": K8S_CACHE / "v1.37.2/bin/kubeadm", "v1beta3": K8S_CACHE / "v1.36.3/bin/kubeadm",
            "v1beta2": K8S_CACHE / "v1.20.2/bin/kubeadm"}


def write_config(tmp_path: Path, docs: list[dict]) -> Path:
    path = tmp_path / "kubeadm.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


@pytest.mark.parametrize("node", ["master1", "master2", "worker1"])
@pytest.mark.parametrize("api", ["v1beta4", "v1beta3"])
def test_kubeadm_validates_the_config_strictly(kubeadm_binaries, tmp_path, api, node):
    full = cluster("1.37.2", kubeadm={"extra_args": {"apiserver": {"audit-log-maxage": "7"}, "kubelet": {"v": "2"}}})
    kubeadm = kubeadm_binaries[api]
    if api == "v1beta3":  # render as 1.30 would, then name a version this kubeadm deploys
        full["env"]["kubernetes_version"] = "1.30.0"
    docs = docs_of(full, node)
    for doc in docs:
        if doc["kind"] == "ClusterConfiguration":
            doc["kubernetesVersion"] = "v1.36.3" if api == "v1beta3" else "v1.37.2"
    assert docs[0]["apiVersion"] == f"kubeadm.k8s.io/{api}"
    proc = subprocess.run([str(kubeadm), "config", "validate", "--config", str(write_config(tmp_path, docs))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # a field kubeadm does not know is an error: the check can fail
    broken = copy.deepcopy(docs)
    broken[0]["nodeRegistration"]["criSockett"] = "x"
    proc = subprocess.run([str(kubeadm), "config", "validate", "--config", str(write_config(tmp_path, broken))],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and "criSockett" in proc.stdout + proc.stderr


def test_kubeadm_1_20_reads_the_v1beta2_config_without_unknown_fields(kubeadm_binaries, tmp_path):
    full = cluster("1.20.2", coredns=False)
    path = write_config(tmp_path, docs_of(full, "master1"))
    proc = subprocess.run([str(kubeadm_binaries["v1beta2"]), "config", "images", "list", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "unknown field" not in proc.stderr, proc.stderr
    assert "10.77.0.1:5000/kube-apiserver:v1.20.2" in proc.stdout
    broken = docs_of(full, "master1")
    broken[1]["networking"]["podSubnett"] = "x"
    proc = subprocess.run([str(kubeadm_binaries["v1beta2"]), "config", "images", "list", "--config",
                           str(write_config(tmp_path, broken))], capture_output=True, text=True, timeout=60, check=False)
    assert "podSubnett" in proc.stderr
