{#- salt-minion on every node: its key (made by cluster.secrets, so the masters
    know it before the minion first starts; a node that joined with its own
    key keeps it), the masters' public key, the config naming every master
    and the drift schedule, then the service. -#}
{%- from "day2/map.jinja" import day2 with context %}
{%- set pki = day2.config_dir ~ '/pki/minion' %}

include:
  - day2.installed
{%- set made_key = 'minion_pem' in pillar.get('brine_secrets', {}).get('salt', {}) %}
{%- if made_key %}

day2-minion-key-managed:
  file.managed:
    - name: {{ pki }}/minion.pem
    - contents_pillar: brine_secrets:salt:minion_pem
    - mode: "0400"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False

day2-minion-public-key-managed:
  file.managed:
    - name: {{ pki }}/minion.pub
    - contents_pillar: brine_secrets:salt:minion_pub
    - mode: "0644"
    - makedirs: True
{%- endif %}

day2-minion-master-key-managed:
  file.managed:
    - name: {{ pki }}/minion_master.pub
    - contents_pillar: brine_secrets:salt:master_pub
    - mode: "0644"
    - makedirs: True

day2-minion-configured:
  file.managed:
    - name: {{ day2.config_dir }}/minion.d/brine.conf
    - source: salt://day2/files/minion.conf.j2
    - template: jinja
    - context:
        day2: {{ day2 | json }}
    - mode: "0644"
    - makedirs: True

day2-minion-unit-installed:
  file.managed:
    - name: /etc/systemd/system/salt-minion.service
    - source: salt://day2/files/salt-minion.service
    - mode: "0644"
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: day2-minion-unit-installed

day2-minion-running:
  service.running:
    - name: salt-minion
    - enable: True
    - require:
      - module: day2-minion-unit-installed
    - watch:
      - cmd: day2-salt-installed
{%- if made_key %}
      - file: day2-minion-key-managed
{%- endif %}
      - file: day2-minion-master-key-managed
      - file: day2-minion-configured
      - file: day2-minion-unit-installed

{#- Drift correction runs again (cluster.upgrade paused it while it worked). #}
day2-drift-correction-resumed:
  file.absent:
    - name: {{ day2.drift_paused_file }}
