{#- A minion started (salt/minion/<id>/start), or someone asked for a node
    (`salt-call event.send brine/node/onboard node=<name>`): cluster.onboard
    syncs Brine's modules to it and, for a node of the inventory that is not
    yet a Ready Kubernetes node, runs cluster.node_add as a cluster job. -#}
{%- set asked = data.get('data', {}) if data.get('data') is mapping else {} %}
{%- set node = asked.get('node') or data.get('node') %}

brine-node-onboarded:
  runner.cluster.onboard:
    - args:
{%- if node %}
      - node: {{ node | json }}
{%- else %}
      - minion_id: {{ data.get('id', '') | json }}
{%- endif %}
