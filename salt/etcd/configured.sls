{#- etcd's certificates and keys (from the brine_secrets:etcd pillar: this
    member's own server and peer pairs, the etcd CA certificate, the
    health-check client pair), its data directory, and Brine's flags for
    Debian's etcd.service.

    The drop-in replaces the unit's ExecStart and empties its Environment= and
    EnvironmentFile= (Debian sets ETCD_NAME and ETCD_DATA_DIR there and reads
    /etc/default/etcd): etcd 3.4 reads every ETCD_* variable as a flag, so the
    flags below are etcd's whole configuration. -#}
{%- from "etcd/map.jinja" import etcd with context %}

include:
  - etcd.installed

{%- if not etcd.member %}

etcd-member-declared:
  test.fail_without_changes:
    - name: {{ pillar.brine_node.name }} does not have the role etcd in the inventory; etcd runs only on etcd members
{%- endif %}

etcd-pki-dir-present:
  file.directory:
    - name: {{ etcd.pki_dir }}
    - user: {{ etcd.user }}
    - group: {{ etcd.group }}
    - mode: "0700"
    - makedirs: True
    - require:
      - pkg: etcd-packages-installed

etcd-pki-files-managed:
  file.managed:
    - names:
{%- for file, key in etcd.pki_files | dictsort %}
      - {{ etcd.pki_dir }}/{{ file }}:
        - contents_pillar: brine_secrets:etcd:{{ key }}
{%- endfor %}
    - user: {{ etcd.user }}
    - group: {{ etcd.group }}
    - mode: "0600"
    - show_changes: False
    - require:
      - file: etcd-pki-dir-present

etcd-pki-dir-only-brine-files:
  file.directory:
    - name: {{ etcd.pki_dir }}
    - clean: True
    - require:
      - file: etcd-pki-files-managed

etcd-data-dir-present:
  file.directory:
    - name: {{ etcd.data_dir }}
    - user: {{ etcd.user }}
    - group: {{ etcd.group }}
    - mode: "0700"
    - require:
      - pkg: etcd-packages-installed

etcd-service-flags-managed:
  file.managed:
    - name: {{ etcd.unit_override }}
    - source: salt://etcd/files/brine.conf.j2
    - template: jinja
    - makedirs: True
    - context:
        etcd: {{ etcd | json }}
        cluster: {{ pillar.env.name | json }}
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: etcd-service-flags-managed
