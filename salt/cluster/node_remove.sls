{#-
  cluster.node_remove - take one node out of its running cluster, from the
  cluster's own salt-master (the day-2 agent):

    salt-run state.orchestrate cluster.node_remove pillar='{"cluster": "<name>", "node": "<node>"}'

  The node must still be in the inventory (its states need its pillar); the
  last step takes it out of the inventory on every master. In order: for an
  etcd member, the quorum check (refused when the members still healthy
  after it would not be a majority); cordon and drain; kubeadm reset on the
  node; its etcd membership removed and etcd stopped there; the node deleted
  from the API; for a master, every remaining node's API load balancer
  re-rendered without it (kubelet replaces the pod); the day-2 agent stopped
  on it and its key deleted on every master; the inventory updated.
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set node = pillar.get('node', '') %}
{%- set target = node ~ '.' ~ cluster %}
{%- set nodes = salt['saltutil.runner']('cluster.members', cluster=cluster) %}
{%- set masters = salt['saltutil.runner']('cluster.members', cluster=cluster, role='master') %}
{%- set etcd_members = salt['saltutil.runner']('cluster.members', cluster=cluster, role='etcd') %}
{%- set remaining = nodes | reject('equalto', target) | list %}
{%- set remaining_masters = masters | reject('equalto', target) | list %}
{%- set acting = salt['saltutil.runner']('cluster.acting_master', cluster=cluster, leaving=node) %}
{%- set endpoints = salt['saltutil.runner']('cluster.etcd_endpoints', cluster=cluster) %}
{%- set pki = '/etc/kubernetes/pki' %}
{%- set etcd_client = [pki ~ '/etcd/ca.crt', pki ~ '/apiserver-etcd-client.crt', pki ~ '/apiserver-etcd-client.key', endpoints] %}
{%- set kubectl = 'kubectl --kubeconfig=/etc/kubernetes/admin.conf' %}

node-remove-pillar-valid:
  brine_cluster.check_passed:
    - check: validate
    - cluster: {{ cluster | json }}
{%- if target not in nodes or not acting or not remaining_masters %}

node-remove-node-known:
  test.fail_without_changes:
    - name: >-
        node {{ node }}: {{ 'not in the inventory of ' ~ cluster if target not in nodes else
        'the last master cannot be removed' if not remaining_masters else 'no other master answers' }}
    - require:
      - brine_cluster: node-remove-pillar-valid
{%- else %}

{#- Brine's modules on every minion as this master has them. #}
node-remove-modules-synced:
  salt.function:
    - timeout: 900
    - name: saltutil.sync_all
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - require:
      - brine_cluster: node-remove-pillar-valid
{%- set last = 'salt: node-remove-modules-synced' %}
{%- if target in etcd_members %}

node-remove-etcd-quorum-kept:
  salt.function:
    - timeout: 900
    - name: brine_etcd.removable
    - tgt: {{ acting | json }}
    - arg: {{ ([node] + etcd_client) | json }}
    - require:
      - {{ last }}
{%- set last = 'salt: node-remove-etcd-quorum-kept' %}
{%- endif %}

node-remove-drained:
  salt.function:
    - timeout: 900
    - name: cmd.run
    - tgt: {{ acting | json }}
    - arg:
      - >-
        if {{ kubectl }} get node {{ node }} >/dev/null 2>&1; then
        {{ kubectl }} cordon {{ node }} &&
        {{ kubectl }} drain {{ node }} --ignore-daemonsets --delete-emptydir-data --force --timeout=300s;
        else echo "{{ node }}: not a Kubernetes node"; fi
    - kwarg:
        python_shell: True
        timeout: 400
    - require:
      - {{ last }}

node-remove-kubernetes-left:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [kubernetes.clean]
    - require:
      - salt: node-remove-drained
{%- set last = 'salt: node-remove-kubernetes-left' %}
{%- if target in etcd_members %}

node-remove-etcd-member-removed:
  salt.function:
    - timeout: 900
    - name: brine_etcd.member_remove
    - tgt: {{ acting | json }}
    - arg: {{ ([node] + etcd_client) | json }}
    - require:
      - {{ last }}

node-remove-etcd-stopped:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [etcd.clean]
    - require:
      - salt: node-remove-etcd-member-removed
{%- set last = 'salt: node-remove-etcd-stopped' %}
{%- endif %}

node-remove-deleted-from-api:
  salt.function:
    - timeout: 900
    - name: cmd.run
    - tgt: {{ acting | json }}
    - arg:
      - {{ kubectl }} delete node {{ node }} --ignore-not-found
    - require:
      - {{ last }}
{%- set last = 'salt: node-remove-deleted-from-api' %}
{%- if target in masters %}

node-remove-lb-upstreams-updated:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ remaining | json }}
    - tgt_type: list
    - sls: [kubernetes.lb]
    - pillar:
        brine_leaving: [{{ node | json }}]
    - require:
      - {{ last }}
{%- set last = 'salt: node-remove-lb-upstreams-updated' %}
{%- endif %}

node-remove-agent-stopped:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [day2.clean]
    - require:
      - {{ last }}

node-remove-key-deleted:
  salt.function:
    - timeout: 900
    - name: cmd.run
    - tgt: {{ remaining_masters | json }}
    - tgt_type: list
    - arg:
      - /opt/brine/salt/bin/salt-key -y -d {{ target }}
    - require:
      - salt: node-remove-agent-stopped

node-remove-inventory-updated:
  salt.runner:
    - name: cluster.inventory_remove
    - cluster: {{ cluster | json }}
    - node: {{ node | json }}
    - require:
      - salt: node-remove-key-deleted
{%- endif %}
