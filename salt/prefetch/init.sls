{#- Binaries and images this node's roles need, fetched from the deploy node and
    verified against the served bundle's index, before any Kubernetes step. -#}
include:
  - runtime

artifacts-prefetched:
  brine_prefetch.present:
    - name: {{ pillar.env.bundle.url.rstrip('/') | json }}
    - roles: {{ pillar.brine_node.roles | json }}
    - runtime: {{ pillar.env.runtime }}
    - registry: {{ pillar.env.bundle.registry }}
    - credentials_pillar: brine_secrets
    - require:
      - sls: runtime
