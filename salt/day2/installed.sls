{#- salt in its own environment, prebuilt by bundle.build from the release
    line's wheels and salt's sdist (_utils/brine_agent_archive.py): fetched
    from the deploy node's file server, checked against its sha256, unpacked
    and swapped in by agent-install.py. No pip, no compiler, nothing built on
    the node. The marker names the archive, so a new bundle's agent installs
    again. files/minion-bootstrap.sh.j2 runs the same installer on a machine
    not yet a node. -#}
{%- from "day2/map.jinja" import day2 with context %}

day2-agent-installer-managed:
  file.managed:
    - name: {{ day2.installer }}
    - source: salt://day2/files/agent-install.py
    - mode: "0755"
    - makedirs: True

day2-salt-installed:
  cmd.run:
    - name: /usr/bin/python3 {{ day2.installer }} {{ day2.agent_url | quote }} {{ day2.venv }}
    - creates: {{ day2.marker }}
    - require:
      - file: day2-agent-installer-managed
