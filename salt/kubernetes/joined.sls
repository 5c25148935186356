{#- This node in its cluster: kubeadm init on the first master (then the
    bootstrap token made valid for the joins that follow), kubeadm join
    elsewhere; once. kubelet runs from then on. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}

include:
  - kubernetes.installed
  - kubernetes.lb
  - kubernetes.configured

kubernetes-standalone-kubelet-config-managed:
  file.managed:
    - name: {{ kubernetes.config_dir }}/kubelet-standalone.yaml
    - contents_pillar: brine_kubeadm:standalone_kubelet_config
    - mode: "0600"
    - require:
      - file: kubernetes-config-dir-present

kubernetes-node-joined:
  brine_kubeadm.joined:
    - name: {{ pillar.brine_node.name }}
    - command: {{ pillar.brine_kubeadm.command | json }}
    - first_master: {{ kubernetes.is_first_master }}
    - api_port: {{ kubernetes.api_port }}
    - standalone_kubelet_config: {{ kubernetes.config_dir }}/kubelet-standalone.yaml
    - standalone_kubelet_arguments: {{ pillar.brine_kubeadm.standalone_kubelet_arguments | json }}
    - wait_seconds: {{ kubernetes.api_wait_seconds }}
    - require:
      - service: kubernetes-kubelet-enabled
      - file: kubernetes-lb-manifest-managed
      - file: kubernetes-kubeadm-config-managed
      - file: kubernetes-patches-only-brine
      - file: kubernetes-standalone-kubelet-config-managed
{%- if kubernetes.is_master %}
      - file: kubernetes-pki-certificates-managed
      - file: kubernetes-pki-keys-managed
{%- endif %}

kubernetes-kubelet-running:
  service.running:
    - name: kubelet
    - enable: True
    - require:
      - brine_kubeadm: kubernetes-node-joined

kubernetes-api-ready:
  brine_kubeadm.api_ready:
    - api_port: {{ kubernetes.api_port }}
    - wait_seconds: {{ kubernetes.api_wait_seconds }}
    - require:
      - service: kubernetes-kubelet-running
{%- if kubernetes.is_first_master %}

kubernetes-bootstrap-token-valid:
  brine_kubeadm.token_valid:
    - name: bootstrap token
    - require:
      - brine_kubeadm: kubernetes-api-ready
{%- endif %}
{%- if kubernetes.is_first_master and pillar.env.network.plugin == 'host-gw' %}

kubernetes-host-gw-rbac-managed:
  file.managed:
    - name: {{ kubernetes.config_dir }}/host-gw-rbac.yaml
    - source: salt://kubernetes/files/host-gw-rbac.yaml
    - require:
      - file: kubernetes-config-dir-present

kubernetes-host-gw-rbac-applied:
  cmd.run:
    - name: kubectl --kubeconfig=/etc/kubernetes/admin.conf apply -f {{ kubernetes.config_dir }}/host-gw-rbac.yaml
    # kubectl diff exits 0 when the cluster already holds these objects as written
    - unless: kubectl --kubeconfig=/etc/kubernetes/admin.conf diff -f {{ kubernetes.config_dir }}/host-gw-rbac.yaml
    - require:
      - file: kubernetes-host-gw-rbac-managed
      - brine_kubeadm: kubernetes-api-ready
{%- endif %}
{%- if kubernetes.is_first_master and pillar.env.get('coredns', True) %}

kubernetes-coredns-upstream-configured:
  brine_kubeadm.coredns_upstream:
    - name: CoreDNS upstream
    - upstream: {{ pillar.env.get('upstream_dns') | json }}
    - require:
      - brine_kubeadm: kubernetes-api-ready
{%- endif %}
