{#- The deploy node's bundle services, in lifecycle order. Target: deploy.<cluster>. -#}
include:
  - bundle_server.unpacked
  - bundle_server.installed
  - bundle_server.configured
  - bundle_server.running
