{#- salt/auth on a cluster's own salt-master: a minion whose key is pending is
    reviewed by cluster.minion_key_review (inventory and fingerprint); nothing
    is accepted here. -#}
{%- if data.get('act') == 'pend' and data.get('id') %}

brine-minion-key-reviewed:
  runner.cluster.minion_key_review:
    - args:
      - minion_id: {{ data.id | json }}
      - pub: {{ data.get('pub', '') | json }}
{%- endif %}
