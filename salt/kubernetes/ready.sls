{#- The gate after the network: every node of the inventory registered and
    Ready, and its API load balancer pod Running, read on the first master.
    Changes nothing. -#}
{%- set nodes = [] %}
{%- set lb_pods = [] %}
{%- for node in pillar.inventory.nodes %}
{%-   do nodes.append(node.name) %}
{%-   do lb_pods.append('brine-api-lb-' ~ node.name) %}
{%- endfor %}

kubernetes-nodes-ready:
  brine_kubeadm.nodes_ready:
    - name: every node Ready
    - nodes: {{ nodes | json }}
    - static_pods: {{ lb_pods | json }}
