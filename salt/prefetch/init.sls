{#- Binaries and images this node's roles need, fetched from the deploy node and
    verified against the served bundle's index, before any Kubernetes step. -#}
{%- from "bundle/served.jinja" import bundle_line_url with context %}

include:
  - runtime

artifacts-prefetched:
  brine_prefetch.present:
    - name: {{ bundle_line_url | json }}
    - roles: {{ pillar.brine_node.roles | json }}
    - runtime: {{ pillar.env.runtime }}
    - registry: {{ pillar.env.bundle.registry }}
    - credentials_pillar: brine_secrets
    - require:
      - sls: runtime
