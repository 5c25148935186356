{#-
  cluster.upgrade - move a running cluster to the pillar's env.kubernetes_version,
  one minor version at a time, its workloads kept running:

    (set env.kubernetes_version in pillar/clusters/<name>/env.sls, put the new
     release line's bundle in the deploy node's /srv/brine/incoming, then)
    salt-run state.orchestrate cluster.upgrade pillar='{"cluster": "<name>"}'
    salt-run state.orchestrate cluster.upgrade pillar='{"cluster": "<name>", "batch": 3}'

  From the deploy node over salt-ssh, like cluster.deploy. Steps, each
  requiring the one before (a failed step stops the rest; a re-run resumes,
  every step skipping what is already at the new version):
  validate, secrets, reach; plan (cluster.upgrade_plan: refuses a skip of more
  than one minor or a downgrade, before anything changes); pause (drift
  correction paused on every node, when the plan found something to do: a
  scheduled highstate holds the old version's pillar until the end); bundle (the new line's bundle served next
  to the old one); prefetch (the new binaries and images on every node at
  once); masters, one at a time: kubeadm upgrade (apply on the first, node on
  the others), drain, new kubelet and kubectl, Ready on it, uncordon; workers,
  `batch` (default env.upgrade.worker_batch) at a time: kubeadm upgrade node,
  drain, new kubelet, Ready, uncordon; record (kube-system/brine-cluster);
  ready (every node Ready, every API load balancer pod running); agent (the
  day-2 agent given the new pillar; drift correction resumes).
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set steps = ['validate', 'secrets', 'reach', 'plan', 'pause', 'bundle', 'prefetch', 'masters', 'workers',
                 'record', 'ready', 'agent'] %}
{%- set nodes = salt['saltutil.runner']('cluster.members', cluster=cluster) %}
{%- set masters = salt['saltutil.runner']('cluster.members', cluster=cluster, role='master') %}
{%- set workers = salt['saltutil.runner']('cluster.members', cluster=cluster, role='worker') | reject('in', masters) | list %}
{%- set job = salt['saltutil.runner']('cluster.job_begin', cluster=cluster, kind='upgrade') %}
{%- set env = salt['saltutil.runner']('cluster.setting', cluster=cluster, key='upgrade') or {} %}
{%- set version = salt['saltutil.runner']('cluster.setting', cluster=cluster, key='kubernetes_version') %}
{%- set batch = (pillar.get('batch') or env.get('worker_batch') or 1) | int %}
{%- set upgrade = {'drain_seconds': env.get('drain_seconds', 300)} %}
{%- set first_master = masters[:1] %}

cluster-pillar-valid:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: validate
    - check: validate
    - cluster: {{ cluster | json }}

cluster-secrets-present:
  brine_cluster.secrets_present:
    - job: {{ job | json }}
    - step: secrets
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-pillar-valid

cluster-nodes-reachable:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: reach
    - check: reach
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-secrets-present

{#- Read-only: the versions running against the pillar's. #}
cluster-upgrade-planned:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: plan
    - check: upgrade_plan
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-nodes-reachable

cluster-drift-correction-paused:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: pause
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - day2.paused
    - pillar:
        brine_pause_reason: {{ ('cluster.upgrade to ' ~ version ~ ' (job ' ~ job ~ ')') | json }}
    - require:
      - brine_cluster: cluster-upgrade-planned
    {#- only when the plan found something to upgrade: a run on an upgraded cluster changes nothing #}
    - onchanges:
      - brine_cluster: cluster-upgrade-planned

{#- The new release line's bundle beside the old one: nodes keep fetching
    their own line's until their pillar names the new version. #}
cluster-bundle-served:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: bundle
    - tgt: {{ ("deploy." ~ cluster) | json }}
    - ssh: True
    - sls:
      - bundle_server
    - require:
      - brine_cluster: cluster-drift-correction-paused

{#- The new version's binaries and images on every node at once, before any
    node is touched: the rolling part then waits on nothing but Kubernetes. #}
cluster-artifacts-prefetched:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: prefetch
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - prefetch
    - require:
      - brine_cluster: cluster-bundle-served
{#- namespace(): a plain set inside a for loop does not outlive its iteration. #}
{%- set ns = namespace(previous='cluster-artifacts-prefetched') %}
{%- set rounds = [] %}
{%- for master in masters %}{% do rounds.append({'step': 'masters', 'label': master.split('.')[0], 'nodes': [master]}) %}{% endfor %}
{%- for start in range(0, workers | length, batch) %}
{%-   set group = workers[start:start + batch] %}
{%-   do rounds.append({'step': 'workers', 'label': group | map('replace', '.' ~ cluster, '') | join('-'), 'nodes': group}) %}
{%- endfor %}
{%- for round in rounds %}
{%-   set names = round.nodes | map('replace', '.' ~ cluster, '') | list %}

{#- {{ round.step }}: {{ names | join(', ') }} #}
cluster-upgrade-{{ round.label }}-kubeadm:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: {{ round.step }}
    - tgt: {{ round.nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.upgrade.kubeadm
    - require:
      - brine_cluster: {{ ns.previous }}

cluster-upgrade-{{ round.label }}-drained:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: {{ round.step }}
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.upgrade.drained
    - pillar:
        brine_upgrade: {{ dict(upgrade, nodes=names) | json }}
    - require:
      - brine_cluster: cluster-upgrade-{{ round.label }}-kubeadm

cluster-upgrade-{{ round.label }}-kubelet:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: {{ round.step }}
    - tgt: {{ round.nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.upgrade.kubelet
    - require:
      - brine_cluster: cluster-upgrade-{{ round.label }}-drained

cluster-upgrade-{{ round.label }}-finished:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: {{ round.step }}
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.upgrade.finished
    - pillar:
        brine_upgrade: {{ dict(upgrade, nodes=names) | json }}
    - require:
      - brine_cluster: cluster-upgrade-{{ round.label }}-kubelet
{%-   set ns.previous = 'cluster-upgrade-' ~ round.label ~ '-finished' %}
{%- endfor %}

cluster-upgrade-recorded:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: record
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.record
    - require:
      - brine_cluster: {{ ns.previous }}

cluster-nodes-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: ready
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.ready
    - require:
      - brine_cluster: cluster-upgrade-recorded

{#- The day-2 agent with the new pillar (its drift correction then holds the
    new version), and drift correction resumed everywhere. #}
cluster-agent-payload-ready:
  brine_cluster.agent_payload_ready:
    - job: {{ job | json }}
    - step: agent
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-nodes-ready

cluster-agent-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: agent
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - day2.payload
      - day2
    - require:
      - brine_cluster: cluster-agent-payload-ready

cluster-report-written:
  brine_cluster.report_written:
    - cluster: {{ cluster | json }}
    - job: {{ job | json }}
    {#- pause runs only when there is something to upgrade: not a step every run must show #}
    - plan: {{ steps | reject('in', ['pause'] + ([] if workers else ['workers'])) | list | json }}
    - order: last
