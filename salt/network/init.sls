{#- The pod network of env.network.plugin on this node: host-gw here; Calico
    is applied from the first master (network.calico). -#}
include:
{%- if pillar.env.network.plugin == 'host-gw' %}
  - network.host_gw
{%- else %}
  - network.calico
{%- endif %}
