{#-
  cluster.deploy - bring a declared cluster to its desired state.

    salt-run state.orchestrate cluster.deploy pillar='{"cluster": "<name>"}'

  Steps run in order; each requires the one before, so a failed step stops
  everything after it and a re-run resumes. This file is rendered once, before
  any step runs: nothing here may depend on what a step produces; the secrets
  every later step needs are made by a step of their own, early.
  Steps (see ../shared/design/ARCHITECTURE.md): validate, secrets, reach,
  bundle served, runtime, prefetch; later issues add control plane, LB,
  workers, network, record, day-2 agent.
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

cluster-bundle-served:
  salt.state:
    - tgt: {{ ("deploy." ~ cluster) | json }}
    - ssh: True
    - sls:
      - bundle_server
    - require:
      - brine_cluster: cluster-nodes-reachable

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
      - salt: cluster-bundle-served

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
