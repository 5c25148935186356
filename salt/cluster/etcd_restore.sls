{#-
  cluster.etcd_restore - bring a cluster's etcd back to a snapshot.

    salt-run state.orchestrate cluster.etcd_restore pillar='{"cluster": "<name>"}'
    salt-run state.orchestrate cluster.etcd_restore \
        pillar='{"cluster": "<name>", "snapshot": "etcd-20250101T060000Z.db"}'

  snapshot: a file name in the members' backup folder (/var/lib/etcd-backup,
  where the brine-etcd-backup timer saves them), or an absolute path on a
  member; by default the newest snapshot any member holds.

  Steps, each requiring the one before:
  1. validate  - the cluster's pillar;
  2. staged    - the snapshot copied from the member holding it to every etcd
                 member (through the deploy side, sha256 checked); a snapshot
                 no member has stops here, before etcd is touched;
  3. restored  - on all members at once (etcd.restored): the snapshot's
                 integrity checked, etcd stopped, the data dir moved aside to
                 /var/lib/etcd.before-restore-<time> (kept), and
                 `etcdctl snapshot restore` into a fresh one with the member's
                 name, peer URL and the inventory's initial cluster;
  4. healthy   - etcd.running on all members at once: started together, and
                 the health gate (every member healthy over TLS).
  Every member restores the same snapshot: the cluster comes back with what it
  held when the snapshot was taken, and loses what was written after.
  Everything on the members' side runs over salt-ssh, as cluster.deploy does.
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set snapshot = pillar.get('snapshot', '') or '' %}
{#- The members come from the pillar now, at render time; [] for an invalid pillar. #}
{%- set etcd_members = salt['saltutil.runner']('cluster.members', cluster=cluster, role='etcd') %}

etcd-restore-pillar-valid:
  brine_cluster.check_passed:
    - check: validate
    - cluster: {{ cluster | json }}

etcd-restore-snapshot-staged:
  brine_cluster.etcd_snapshot_staged:
    - cluster: {{ cluster | json }}
    - snapshot: {{ snapshot | string | json }}
    - require:
      - brine_cluster: etcd-restore-pillar-valid

etcd-restore-members-restored:
  salt.state:
    - tgt: {{ etcd_members | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - etcd.restored
    - require:
      - brine_cluster: etcd-restore-snapshot-staged

etcd-restore-cluster-healthy:
  salt.state:
    - tgt: {{ etcd_members | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - etcd.running
    - require:
      - salt: etcd-restore-members-restored
