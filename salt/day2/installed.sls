{#- salt in its own virtual environment, from the bundle only: every wheel of
    the release line's manifest (pip --no-index --no-deps: nothing resolved,
    nothing fetched elsewhere), then salt's sdist built against them. The
    marker names the wheel set, so a new bundle's set installs again.
    files/minion-bootstrap.sh.j2 does the same on a machine not yet a node. -#}
{%- from "day2/map.jinja" import day2 with context %}
{%- set marker = day2.marker %}

include:
  - offline_repo

day2-python-venv-installed:
  pkg.installed:
    - name: python3-venv
    - install_recommends: False
    - require:
      - sls: offline_repo

day2-salt-venv-created:
  cmd.run:
    - name: python3 -m venv {{ day2.venv }}
    - creates: {{ day2.venv }}/bin/python
    - require:
      - pkg: day2-python-venv-installed

day2-salt-requirements-managed:
  file.managed:
    - names:
      - {{ day2.venv }}.requirements.txt:
        - contents: {{ day2.requirements | json }}
      - {{ day2.venv }}.sdist-requirements.txt:
        - contents: {{ day2.sdist_requirement | json }}
    - mode: "0644"
    - makedirs: True

day2-salt-installed:
  cmd.run:
    - name: >-
        {{ day2.pip }} --find-links {{ day2.wheels_url }} -r {{ day2.venv }}.requirements.txt
        && {{ day2.pip }} --no-build-isolation -r {{ day2.venv }}.sdist-requirements.txt
        && {{ day2.venv }}/bin/python -c 'import salt.version; assert salt.version.__version__ == "{{ day2.salt_version }}"'
        && rm -f {{ day2.venv }}/.brine-* && touch {{ marker }}
    - creates: {{ marker }}
    - require:
      - cmd: day2-salt-venv-created
      - file: day2-salt-requirements-managed
