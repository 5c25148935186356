{#-
  cluster.node_add - bring one node of the inventory into its running cluster,
  over its salt-minion, from the cluster's own salt-master (the day-2 agent).
  The onboarding reactor starts it (cluster.onboard, as a cluster job); by hand:

    salt-run state.orchestrate cluster.node_add pillar='{"cluster": "<name>", "node": "<node>", "master": "<master>"}'

  Only the new node is changed, in deploy's order: preflight (that node's
  checks), os, runtime, prefetch, the Kubernetes binaries and its API load
  balancer, the bootstrap token made valid on the acting master, kubeadm join,
  the pod network, and the gate: every node Ready. With the host-gw network
  the other nodes gain a route to the new node's pods (routes only; nothing
  restarts). Workers only: a master or etcd member joins by cluster.deploy.
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set node = pillar.get('node', '') %}
{%- set master = pillar.get('master', '') %}
{%- set target = node ~ '.' ~ cluster %}
{%- set acting = master ~ '.' ~ cluster %}
{%- set nodes = salt['saltutil.runner']('cluster.members', cluster=cluster) %}

node-add-pillar-valid:
  brine_cluster.check_passed:
    - check: validate
    - cluster: {{ cluster | json }}
{%- if target not in nodes or not master %}

node-add-node-known:
  test.fail_without_changes:
    - name: "node {{ node }}: not in the inventory of {{ cluster }} (or no master given); add it to pillar/clusters/{{ cluster }}/inventory.sls"
    - require:
      - brine_cluster: node-add-pillar-valid
{%- else %}

node-add-preflight-passed:
  brine_cluster.check_passed:
    - check: preflight
    - cluster: {{ cluster | json }}
    - nodes: [{{ node | json }}]
    - require:
      - brine_cluster: node-add-pillar-valid

node-add-os-ready:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [os_base]
    - require:
      - brine_cluster: node-add-preflight-passed

node-add-runtime-ready:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [runtime]
    - require:
      - salt: node-add-os-ready

node-add-artifacts-prefetched:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [prefetch]
    - require:
      - salt: node-add-runtime-ready

node-add-kubernetes-installed:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [kubernetes.installed, kubernetes.lb]
    - require:
      - salt: node-add-artifacts-prefetched

node-add-token-valid:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ acting | json }}
    - sls: [kubernetes.token]
    - require:
      - salt: node-add-kubernetes-installed

node-add-joined:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ target | json }}
    - sls: [kubernetes]
    - require:
      - salt: node-add-token-valid

node-add-network-ready:
  salt.state:
    - queue: True
    - timeout: 900
{%- if salt['saltutil.runner']('cluster.setting', cluster=cluster, key='network.plugin') == 'host-gw' %}
    - tgt: {{ nodes | json }}
    - tgt_type: list
{%- else %}
    - tgt: {{ target | json }}
{%- endif %}
    - sls: [network]
    - require:
      - salt: node-add-joined

node-add-nodes-ready:
  salt.state:
    - queue: True
    - timeout: 900
    - tgt: {{ acting | json }}
    - sls: [kubernetes.ready]
    - require:
      - salt: node-add-network-ready
{%- endif %}
