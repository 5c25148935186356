{#- The gate after the network: every node of the inventory registered and
    Ready, read on the first master. Changes nothing. -#}
{%- set nodes = [] %}
{%- for node in pillar.inventory.nodes %}{% do nodes.append(node.name) %}{% endfor %}

kubernetes-nodes-ready:
  brine_kubeadm.nodes_ready:
    - name: every node Ready
    - nodes: {{ nodes | json }}
