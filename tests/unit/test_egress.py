"""
The zero-egress scanner: references to the deploy node's registry and file
server, and inside the cluster, pass; anything else is named with its line.
"""

import brine_egress
import pytest

ENV = {
    "bundle": {"url": "http://10.77.0.1:8080/", "registry": "10.77.0.1:5000"},
    "networks": {"node": "10.77.0.0/24", "pod": "10.244.0.0/16", "service": "10.96.0.0/16"},
    "cluster_domain": "cluster.local",
}
NODES = [{"name": "master1", "address": "10.77.0.11"}, {"name": "worker1", "address": "10.77.0.21"}]
ALLOWED = brine_egress.Allowed.for_cluster(ENV, NODES)


@pytest.mark.parametrize("line", [
    "  image: 10.77.0.1:5000/library/nginx:1.22.1",
    'sandbox_image = "10.77.0.1:5000/pause:3.10.2"',
    'server = "https://10.77.0.1:5000"',
    "deb [trusted=yes] http://10.77.0.1:8080/debs ./",
    "imageRepository: 10.77.0.1:5000",
    "    server: https://127.0.0.1:6443",
    "    server: https://10.77.0.11:6443",
    "  - --kubeconfig-url=https://kubernetes.default.svc:443/",
    "  url: http://10.96.0.10:9153/metrics",
    "# image: docker.io/library/nginx (a comment: never fetched)",
    "  image: {{ registry }}/pause",
    "  --listen-client-urls=https://10.77.0.11:2379,https://127.0.0.1:2379 \\",
    "  --initial-cluster=master1=https://10.77.0.11:2380,worker1=https://10.77.0.21:2380 \\",
])
def test_references_that_stay_inside_pass(line):
    assert brine_egress.scan_text("f", line, ALLOWED) == []


@pytest.mark.parametrize("line, reference", [
    ("  image: docker.io/library/nginx:1.25", "docker.io/library/nginx:1.25"),
    ("  image: nginx:1.25", "nginx:1.25"),
    ('sandbox_image = "registry.k8s.io/pause:3.10"', "registry.k8s.io/pause:3.10"),
    ("imageRepository: registry.k8s.io", "registry.k8s.io"),
    ("deb http://deb.debian.org/debian bookworm main", "http://deb.debian.org/debian"),
    ("    - --pod-infra-container-image=k8s.gcr.io/pause:3.2", "k8s.gcr.io/pause:3.2"),
    ("  manifest: https://raw.githubusercontent.com/projectcalico/calico/v3.30.0/manifests/calico.yaml",
     "https://raw.githubusercontent.com/projectcalico/calico/v3.30.0/manifests/calico.yaml"),
    ("  url: http://10.77.0.1:9999/other-port", "http://10.77.0.1:9999/other-port"),
    ("  image: 10.77.0.1:5001/pause:3.10", "10.77.0.1:5001/pause:3.10"),
    ('  server = "https://192.0.2.10:443"', "https://192.0.2.10:443"),
    ("  --etcd-servers=https://10.77.0.11:2379,https://192.0.2.10:2379", "https://192.0.2.10:2379"),
    ("  url: https://192.0.2.10:23x9/", "https://192.0.2.10:23x9/"),
])
def test_references_that_leave_are_named(line, reference):
    findings = brine_egress.scan_text("deploy/pod.yaml", "first: line\n" + line, ALLOWED)
    assert [(f.line, f.reference) for f in findings] == [(2, reference)]
    assert str(findings[0]).startswith(f"deploy/pod.yaml:2: {reference} ")


def test_a_manifest_naming_docker_hub_is_caught():
    manifest = """apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
    - name: web
      image: docker.io/library/nginx
"""
    findings = brine_egress.scan_text("web.yaml", manifest, ALLOWED)
    assert [str(f) for f in findings] == [
        "web.yaml:8: docker.io/library/nginx is not an image of the private registry 10.77.0.1:5000"]


def test_an_nginx_upstream_name_is_not_taken_for_a_host():
    config = """
upstream kube_apiservers_readyz {
    server 10.77.0.11:6443;
}
location = /healthz { proxy_pass https://kube_apiservers_readyz/readyz; }
location = /other { proxy_pass https://elsewhere.example/readyz; }
"""
    findings = brine_egress.scan_text("nginx.conf", config, ALLOWED)
    assert [f.reference for f in findings] == ["https://elsewhere.example/readyz"]


def test_description_texts_of_yaml_documents_are_not_read_but_values_are():
    manifest = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  versions:
  - schema:
      openAPIV3Schema:
        description: 'More info: https://git.k8s.io/community/contributors/devel/api-conventions.md#types-kinds
          and https://kubernetes.io/docs/concepts/'
        properties:
          url:
            default: https://downloads.example.com/x
"""
    findings = brine_egress.scan_text("crd.yaml", manifest, ALLOWED)
    assert [(f.line, f.reference) for f in findings] == [(12, "https://downloads.example.com/x")]
