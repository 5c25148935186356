{#-
  Each cluster's nodes get that cluster's pillar, and nothing else: minion ids
  are <node>.<cluster> (see _roster/brine.py), so '*.<cluster>' is one cluster.
  A cluster is a folder under pillar/clusters/ holding env.sls and inventory.sls.
-#}
{%- set clusters_dir = opts.pillar_roots.base[0] ~ '/clusters' %}
base:
{%- for name in salt['file.readdir'](clusters_dir) | sort if name not in ['.', '..'] and salt['file.file_exists'](clusters_dir ~ '/' ~ name ~ '/env.sls') %}
  '*.{{ name }}':
    - clusters.{{ name }}.env
    - clusters.{{ name }}.inventory
{%- endfor %}
