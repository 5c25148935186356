{#-
  cluster.certs_renew - renew the certificates of a running cluster, one
  machine at a time so it keeps serving:

    salt-run state.orchestrate cluster.certs_renew pillar='{"cluster": "<name>"}'
    salt-run state.orchestrate cluster.certs_renew pillar='{"cluster": "<name>", "days": 90}'
    salt-run state.orchestrate cluster.certs_renew pillar='{"cluster": "<name>", "force": true}'

  Brine's certificates (etcd's, the API servers' etcd client) are made again
  by cluster.secrets when they have fewer than 30 days left and written to
  each etcd member in turn (etcd restarts with them, its health gate between
  members) and to each master; then on each master in turn kubeadm's
  certificates are renewed when one has fewer than `days` left (or always with
  `force`), its control plane restarted on them, its API server gated. Runs on
  the deploy side (salt-ssh) or on the cluster's own salt-master (minions).
  The daily check (brine_certs.check) warns env.day2.cert_warn_days ahead.
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set ssh = opts.get('brine_cluster_master') != cluster %}
{%- set asked = {'days': pillar.get('days', 30) | int, 'force': pillar.get('force', False)} %}
{%- set masters = salt['saltutil.runner']('cluster.members', cluster=cluster, role='master') %}
{%- set etcd_members = salt['saltutil.runner']('cluster.members', cluster=cluster, role='etcd') %}

certs-renew-pillar-valid:
  brine_cluster.check_passed:
    - check: validate
    - cluster: {{ cluster | json }}

certs-renew-secrets-current:
  brine_cluster.secrets_present:
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: certs-renew-pillar-valid
{#- namespace(): a plain set inside a for loop does not outlive its iteration. #}
{%- set ns = namespace(previous='brine_cluster: certs-renew-secrets-current') %}
{%- for member in etcd_members %}

certs-renew-etcd-{{ member.split('.')[0] }}:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ member | json }}
    - ssh: {{ ssh }}
    - sls: [etcd]
    - require:
      - {{ ns.previous }}
{%- set ns.previous = 'salt: certs-renew-etcd-' ~ member.split('.')[0] %}
{%- endfor %}
{%- for master in masters %}

certs-renew-kubernetes-{{ master.split('.')[0] }}:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ master | json }}
    - ssh: {{ ssh }}
    - sls: [kubernetes.configured, kubernetes.certs]
    - pillar:
        brine_certs: {{ asked | json }}
    - require:
      - {{ ns.previous }}
{%- set ns.previous = 'salt: certs-renew-kubernetes-' ~ master.split('.')[0] %}
{%- endfor %}
