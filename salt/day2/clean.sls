{#- The day-2 agent leaves a node (cluster.node_remove): salt-minion (and on a
    master salt-master) stopped and disabled, their units and keys gone. The
    Python environment stays. A minion that stops itself here finishes this
    run first (its unit kills only the main process). -#}
{%- from "day2/map.jinja" import day2 with context %}

{%- for service in ['salt-master', 'salt-minion'] %}

day2-{{ service }}-dead:
  service.dead:
    - name: {{ service }}
    - enable: False
    - onlyif: test -e /etc/systemd/system/{{ service }}.service
{%- endfor %}

day2-agent-files-absent:
  file.absent:
    - names:
      - /etc/systemd/system/salt-master.service
      - /etc/systemd/system/salt-minion.service
      - {{ day2.config_dir }}/pki
      - {{ day2.config_dir }}/minion.d/brine.conf
      - {{ day2.config_dir }}/master.d/brine.conf
      - {{ day2.root }}
    - require:
      - service: day2-salt-master-dead
      - service: day2-salt-minion-dead

day2-agent-units-forgotten:
  cmd.run:
    - name: systemctl daemon-reload && systemctl reset-failed salt-master salt-minion 2>/dev/null; true
    - onchanges:
      - file: day2-agent-files-absent
