{#- Kubernetes on a node, in lifecycle order: binaries and kubelet's unit
    (installed), a node an interrupted run left half-joined reset, the API load
    balancer's static pod, kubeadm's configuration and certificates
    (configured), then the node in its cluster (joined). cluster.deploy applies
    it to the first master, then each other master in turn, then all workers
    at once. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

include:
  - kubernetes.installed
  - kubernetes.joined

{#- kubeadm reset empties /etc/kubernetes: it runs before Brine's files are written. #}
kubernetes-unfinished-join-reset:
  brine_kubeadm.reset_if_incomplete:
    - name: {{ pillar.brine_node.name }}
    - require:
      - sls: kubernetes.installed
    - require_in:
      - file: kubernetes-lb-config-dir-present
      - file: kubernetes-lb-manifest-managed
      - file: kubernetes-config-dir-present
{%- if kubernetes.is_master %}
      - file: kubernetes-pki-dirs-present
{%- endif %}
