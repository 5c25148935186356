{#- cluster.upgrade, on the acting master: the nodes of this round
    (pillar brine_upgrade:nodes) cordoned and drained before their kubelet is
    replaced; a node whose kubelet already runs the version is left alone. -#}
{%- from "kubernetes/map.jinja" import kubernetes with context %}
{%- for node in pillar.brine_upgrade.nodes %}

kubernetes-upgrade-{{ node }}-drained:
  brine_kubeadm.drained:
    - name: {{ node }}
    - version: {{ kubernetes.version }}
    - timeout: {{ pillar.brine_upgrade.get('drain_seconds', 300) }}
{%- endfor %}
