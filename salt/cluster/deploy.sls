{#-
  cluster.deploy - bring a declared cluster to its desired state.

    salt-run state.orchestrate cluster.deploy pillar='{"cluster": "<name>"}'

  Steps run in order; each requires the one before, so a failed step stops
  everything after it and a re-run resumes. This file is rendered once, before
  any step runs: nothing here may depend on what a step produces; the secrets
  every later step needs are made by a step of their own, early.
  Steps (see ../shared/design/ARCHITECTURE.md): validate, secrets, reach,
  preflight, bundle served, os, runtime, prefetch, etcd; later issues add
  control plane, LB, workers, network, record, day-2 agent.
-#}
{%- set cluster = pillar.get('cluster', '') %}
{#- Targets come from the pillar now, at render time; [] for an invalid pillar,
    whose steps then never run (they require the validate step). #}
{%- set nodes = salt['saltutil.runner']('cluster.members', cluster=cluster) %}

cluster-pillar-valid:
  brine_cluster.check_passed:
    - check: validate
    - cluster: {{ cluster | json }}

cluster-secrets-present:
  brine_cluster.secrets_present:
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-pillar-valid

cluster-nodes-reachable:
  brine_cluster.check_passed:
    - check: reach
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-secrets-present

{#- Read-only checks on every node at once, then across nodes (hostnames, MACs,
    clocks) and the zero-egress check; every problem reported together, and
    nothing changed anywhere when any is found. #}
cluster-preflight-passed:
  brine_cluster.check_passed:
    - check: preflight
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-nodes-reachable

cluster-bundle-served:
  salt.state:
    - tgt: {{ ("deploy." ~ cluster) | json }}
    - ssh: True
    - sls:
      - bundle_server
    - require:
      - brine_cluster: cluster-preflight-passed

{#- Kernel modules, sysctl, swap, /etc/hosts and base packages on every node
    (packages come from the file server the step before brought up). #}
cluster-os-ready:
  salt.state:
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - os_base
    - require:
      - salt: cluster-bundle-served

{#- containerd (or Docker) on every node, its mirrors pointing every public
    registry name at the private registry. #}
cluster-runtime-ready:
  salt.state:
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - runtime
    - require:
      - salt: cluster-os-ready

{#- Every binary and image each node's roles need, on all nodes at once. #}
cluster-artifacts-prefetched:
  salt.state:
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - prefetch
    - require:
      - salt: cluster-runtime-ready

{#- etcd on every etcd member at once (they start together: a member is ready
    only when the cluster has a leader): the offline repository, then etcd with
    TLS, its health gate and the backup timer. Its members are read from the
    pillar now, at render time. #}
{%- set etcd_members = salt['saltutil.runner']('cluster.members', cluster=cluster, role='etcd') %}
cluster-etcd-healthy:
  salt.state:
    - tgt: {{ etcd_members | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - offline_repo
      - etcd
    - require:
      - salt: cluster-artifacts-prefetched
