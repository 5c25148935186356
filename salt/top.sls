{#- The highstate by role (roles from the brine_node pillar, _pillar/brine.py).
    Components are added here as they are built. -#}
base:
  'brine_node:roles:deploy':
    - match: pillar
    - bundle_server
  'brine_node:roles:master':
    - match: pillar
    - offline_repo
    - os_base
    - bundle_ca
    - runtime
    - prefetch
    - kubernetes
    - network
    - day2
  'brine_node:roles:worker':
    - match: pillar
    - offline_repo
    - os_base
    - bundle_ca
    - runtime
    - prefetch
    - kubernetes
    - network
    - day2
  'brine_node:roles:etcd':
    - match: pillar
    - offline_repo
    - etcd
