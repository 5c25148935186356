{#- The host-gw pod network on a node that has joined its cluster: its CNI
    configuration for its own pod CIDR, routes to every other node's pods and
    the masquerade rule (brine_hostgw), made to survive a reboot by a oneshot
    unit. Re-applied on every deploy: a node added or removed changes every
    node's routes. -#}
brine-host-gw-installed:
  file.managed:
    - names:
      - /usr/local/sbin/brine-host-gw:
        - source: salt://network/files/brine-host-gw
        - mode: "0755"
      - /etc/systemd/system/brine-host-gw.service:
        - source: salt://network/files/brine-host-gw.service
        - mode: "0644"
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: brine-host-gw-installed

brine-host-gw-enabled:
  service.enabled:
    - name: brine-host-gw
    - require:
      - file: brine-host-gw-installed

brine-host-gw-configured:
  brine_hostgw.configured:
    - name: {{ pillar.brine_node.name }}
    - pod_network: {{ pillar.env.networks.pod | string }}
    - api_port: {{ pillar.env.api_port }}
    - require:
      - service: brine-host-gw-enabled
