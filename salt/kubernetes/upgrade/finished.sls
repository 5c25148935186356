{#- cluster.upgrade, on the acting master: each node of this round Ready on
    its new kubelet, then uncordoned (if Brine cordoned it). -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}
{%- for node in pillar.brine_upgrade.nodes %}

kubernetes-upgrade-{{ node }}-finished:
  brine_kubeadm.upgrade_finished:
    - name: {{ node }}
    - version: {{ kubernetes.version }}
{%- endfor %}
