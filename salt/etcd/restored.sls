{#- This member's data replaced by a restore of the staged snapshot, etcd left
    stopped. Not part of the highstate: the cluster.etcd_restore orchestrate
    stages one snapshot on every member (restore.snapshot), applies this to all
    members at once, then etcd.running to start them together.

    The data directory in use is moved aside to <data_dir>.before-restore-<UTC
    time>, never deleted; `etcdctl snapshot restore` makes a fresh one with this
    member's name, peer URL and the inventory's initial cluster (a new cluster
    id: the members do not rejoin the old cluster's state). -#}
{%- from "etcd/map.jinja" import etcd with context %}
{%- set snapshot = etcd.restore.snapshot %}
{%- set clean = 'env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin ' %}

include:
  - etcd.configured

etcd-restore-snapshot-intact:
  cmd.run:
    - name: {{ clean }}/usr/bin/etcdctl snapshot status {{ snapshot }} -w table
    - require:
      - pkg: etcd-packages-installed

etcd-service-stopped-for-restore:
  service.dead:
    - name: {{ etcd.service }}
    - require:
      - cmd: etcd-restore-snapshot-intact

etcd-data-dir-set-aside:
  cmd.run:
    - name: mv {{ etcd.data_dir }} {{ etcd.data_dir }}.before-restore-$(date -u +%Y%m%dT%H%M%SZ)
    - onlyif: test -e {{ etcd.data_dir }}
    - require:
      - service: etcd-service-stopped-for-restore

etcd-data-dir-restored:
  cmd.run:
    - name: >-
        {{ clean }}/usr/bin/etcdctl snapshot restore {{ snapshot }}
        --name={{ etcd.member.name }}
        --initial-cluster={{ etcd.initial_cluster }}
        --initial-cluster-token={{ etcd.initial_cluster_token }}
        --initial-advertise-peer-urls={{ etcd.member.peer_url }}
        --data-dir={{ etcd.data_dir }}
        && chown -R {{ etcd.user }}:{{ etcd.group }} {{ etcd.data_dir }}
        && chmod 0700 {{ etcd.data_dir }}
    - require:
      - cmd: etcd-data-dir-set-aside
