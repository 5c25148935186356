{#- Snapshots of this member on a timer: a oneshot service runs
    `etcdctl snapshot save` through the member's local client URL (as the etcd
    user, with the health-check client certificate) into
    <backup.dir>/etcd-<UTC timestamp>.db and keeps the newest backup.keep.
    Take one now: systemctl start brine-etcd-backup.service -#}
{%- from "etcd/map.jinja" import etcd with context %}
{%- set backup = etcd.backup %}

include:
  - etcd.configured

etcd-backup-dir-present:
  file.directory:
    - name: {{ backup.dir }}
    - user: {{ etcd.user }}
    - group: {{ etcd.group }}
    - mode: "0700"
    - require:
      - pkg: etcd-packages-installed

etcd-backup-script-managed:
  file.managed:
    - name: {{ backup.script }}
    - source: salt://etcd/files/brine-etcd-backup.sh.j2
    - template: jinja
    - mode: "0755"
    - context:
        etcd: {{ etcd | json }}

etcd-backup-units-managed:
  file.managed:
    - names:
      - /etc/systemd/system/{{ backup.unit }}.service:
        - source: salt://etcd/files/brine-etcd-backup.service.j2
      - /etc/systemd/system/{{ backup.unit }}.timer:
        - source: salt://etcd/files/brine-etcd-backup.timer.j2
    - template: jinja
    - context:
        etcd: {{ etcd | json }}
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: etcd-backup-units-managed

etcd-backup-timer-running:
  service.running:
    - name: {{ backup.unit }}.timer
    - enable: True
    - watch:
      - module: etcd-backup-units-managed
    - require:
      - file: etcd-backup-dir-present
      - file: etcd-backup-script-managed
      - file: etcd-pki-files-managed
