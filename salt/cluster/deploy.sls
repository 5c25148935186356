{#-
  cluster.deploy - bring a declared cluster to its desired state.

    salt-run state.orchestrate cluster.deploy pillar='{"cluster": "<name>"}'

  Steps run in order; each requires the one before, so a failed step stops
  everything after it and a re-run resumes. This file is rendered once, before
  any step runs: nothing here may depend on what a step produces; the secrets
  every later step needs are made by a step of their own, early.
  Steps (see ../shared/design/ARCHITECTURE.md): validate, secrets, reach, bundle
  served; later issues add preflight, os, runtime, prefetch, etcd, control
  plane, LB, workers, network, record, day-2 agent.
-#}
{%- set cluster = pillar.get('cluster', '') %}

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
