{#- Undo etcd in reverse lifecycle order: the backup timer and etcd stopped,
    Brine's units, flags and certificates gone, the packages removed. The data
    (/var/lib/etcd, and data dirs set aside by a restore) and the snapshots
    (/var/lib/etcd-backup) are kept: remove them by hand to reclaim them; a
    member started again on its old data rejoins its old cluster. -#}
{%- from "etcd/map.jinja" import etcd with context %}

etcd-backup-timer-dead:
  service.dead:
    - name: {{ etcd.backup.unit }}.timer
    - enable: False

etcd-backup-units-absent:
  file.absent:
    - names:
      - /etc/systemd/system/{{ etcd.backup.unit }}.timer
      - /etc/systemd/system/{{ etcd.backup.unit }}.service
      - {{ etcd.backup.script }}
    - require:
      - service: etcd-backup-timer-dead

etcd-service-dead:
  service.dead:
    - name: {{ etcd.service }}
    - enable: False

etcd-service-flags-absent:
  file.absent:
    - name: {{ etcd.unit_override }}
    - require:
      - service: etcd-service-dead

etcd-pki-absent:
  file.absent:
    - name: {{ etcd.pki_dir }}
    - require:
      - service: etcd-service-dead

etcd-units-reloaded:
  module.run:
    - service.systemctl_reload: []
    - onchanges:
      - file: etcd-backup-units-absent
      - file: etcd-service-flags-absent

etcd-packages-removed:
  pkg.removed:
    - pkgs: {{ etcd.packages | json }}
    - require:
      - file: etcd-pki-absent
      - file: etcd-service-flags-absent
