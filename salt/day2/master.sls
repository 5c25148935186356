{#- The cluster's own salt-master on each master: the masters' shared key,
    every deployed node's minion key accepted in advance (no auto_accept), the
    config (this cluster's pillar, Brine's modules, the onboarding reactors),
    then the service. Brine itself and the cluster's pillar and secrets arrive
    with day2.payload, from the deploy side. -#}
{%- from "day2/map.jinja" import day2 with context %}
{%- set pki = day2.config_dir ~ '/pki/master' %}

include:
  - day2.installed

day2-master-key-managed:
  file.managed:
    - name: {{ pki }}/master.pem
    - contents_pillar: brine_secrets:salt:master_pem
    - mode: "0400"
    - makedirs: True
    - dir_mode: "0700"
    - show_changes: False

{#- Written once, never replaced and its mode left alone: salt-master 3008
    moves both keys to <id>.pem/.pub behind symlinks at its first start and
    stores the public key with a mode of its own (a second deploy found it
    "changed": mode); the key, and the fingerprint minions check, stay the same. #}
day2-master-public-key-managed:
  file.managed:
    - name: {{ pki }}/master.pub
    - contents_pillar: brine_secrets:salt:master_pub
    - makedirs: True
    - replace: False
{%- for minion_id in pillar.get('brine_secrets', {}).get('salt', {}).get('minion_pubs', {}) | sort %}

day2-master-accepts-{{ minion_id }}:
  file.managed:
    - name: {{ pki }}/minions/{{ minion_id }}
    - contents_pillar: brine_secrets:salt:minion_pubs:{{ minion_id }}
    - mode: "0644"
    - makedirs: True
{%- endfor %}

day2-master-configured:
  file.managed:
    - name: {{ day2.config_dir }}/master.d/brine.conf
    - source: salt://day2/files/master.conf.j2
    - template: jinja
    - context:
        day2: {{ day2 | json }}
    - mode: "0644"
    - makedirs: True

{#- For a machine to join by itself: see the script's header. #}
{%- set bootstrap = salt['slsutil.merge'](day2, {'minion_id': '@NODE@.' ~ day2.cluster}) %}
day2-minion-bootstrap-script-managed:
  file.managed:
    - name: {{ day2.root }}/minion-bootstrap.sh
    - source: salt://day2/files/minion-bootstrap.sh.j2
    - template: jinja
    - context:
        day2: {{ bootstrap | json }}
        master_pub: {{ pillar.get('brine_secrets', {}).get('salt', {}).get('master_pub', '') | json }}
    - mode: "0755"
    - makedirs: True

day2-master-unit-installed:
  file.managed:
    - name: /etc/systemd/system/salt-master.service
    - source: salt://day2/files/salt-master.service
    - mode: "0644"
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: day2-master-unit-installed

day2-master-running:
  service.running:
    - name: salt-master
    - enable: True
    - require:
      - module: day2-master-unit-installed
    - watch:
      - cmd: day2-salt-installed
      - file: day2-master-key-managed
      - file: day2-master-configured
      - file: day2-master-unit-installed
