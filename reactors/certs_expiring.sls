{#- brine/certs/expiring (a node's daily brine_certs.check): logged on the
    master and kept for cluster.status; renewal stays a decision
    (salt-run state.orchestrate cluster.certs_renew). -#}
{%- set sent = data.get('data') if data.get('data') is mapping else data %}

brine-expiring-certificates-recorded:
  runner.cluster.certs_expiring:
    - args:
      - minion_id: {{ data.get('id', '') | json }}
      - certificates: {{ sent.get('certificates', []) | json }}
