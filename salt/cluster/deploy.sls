{#-
  cluster.deploy - bring a declared cluster to its desired state.

    salt-run state.orchestrate cluster.deploy pillar='{"cluster": "<name>"}'
    salt-run state.orchestrate cluster.deploy pillar='{"cluster": "<name>", "until": "etcd"}'

  Steps run in order; each requires the one before, so a failed step stops
  everything after it and a re-run resumes. This file is rendered once, before
  any step runs: nothing here may depend on what a step produces; the secrets
  every later step needs (join material included) are made by a step of their
  own, early. `until` names the last step to run (one of `steps` below).
  Steps (see ../shared/design/ARCHITECTURE.md): validate, secrets, reach,
  preflight, bundle, os, runtime, prefetch, etcd, kubernetes (binaries and
  the API load balancer on every node), init (kubeadm init on the first
  master), masters (kubeadm join --control-plane, one at a time), workers
  (kubeadm join, all at once), network (and every node Ready), record, agent
  (the day-2 agent: salt-master on the masters, salt-minion on every node).
-#}
{%- set cluster = pillar.get('cluster', '') %}
{%- set steps = ['validate', 'secrets', 'reach', 'preflight', 'bundle', 'os', 'runtime', 'prefetch', 'etcd',
                 'kubernetes', 'init', 'masters', 'workers', 'network', 'record', 'agent'] %}
{%- set until = pillar.get('until') or steps[-1] %}
{%- set last = steps.index(until) if until in steps else -1 %}
{%- set run = {} %}
{%- for step in steps %}{% do run.update({step: loop.index0 <= last}) %}{% endfor %}
{#- Targets come from the pillar now, at render time; [] for an invalid pillar,
    whose steps then never run (they require the validate step). #}
{%- set nodes = salt['saltutil.runner']('cluster.members', cluster=cluster) %}
{#- The cluster job this run is: every step records into its folder, the
    report (report.html, timeline.png; salt-run cluster.report <name>) is
    written there at the end, whatever failed. #}
{%- set job = salt['saltutil.runner']('cluster.job_begin', cluster=cluster, kind='deploy') %}
{%- set workers_kind = 'brine_cluster' if salt['saltutil.runner']('cluster.members', cluster=cluster, role='worker') else 'salt' %}
{%- set masters = salt['saltutil.runner']('cluster.members', cluster=cluster, role='master') %}
{%- set workers = salt['saltutil.runner']('cluster.members', cluster=cluster, role='worker') %}
{%- if last < 0 %}

cluster-deploy-until-known:
  test.fail_without_changes:
    - name: "until={{ until }} is not a step of cluster.deploy; use one of: {{ steps | join(', ') }}"
{%- endif %}

{%- if run.validate %}

cluster-pillar-valid:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: validate
    - check: validate
    - cluster: {{ cluster | json }}
{%- endif %}

{%- if run.secrets %}

cluster-secrets-present:
  brine_cluster.secrets_present:
    - job: {{ job | json }}
    - step: secrets
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-pillar-valid
{%- endif %}

{%- if run.reach %}

cluster-nodes-reachable:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: reach
    - check: reach
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-secrets-present
{%- endif %}

{%- if run.preflight %}

{#- Read-only checks on every node at once, then across nodes (hostnames, MACs,
    clocks) and the zero-egress check; every problem reported together, and
    nothing changed anywhere when any is found. #}
cluster-preflight-passed:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: preflight
    - check: preflight
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-nodes-reachable

{#- A running cluster of another version than the pillar's is moved by
    cluster.upgrade, never deployed over. #}
cluster-version-unchanged:
  brine_cluster.check_passed:
    - job: {{ job | json }}
    - step: preflight
    - check: version_unchanged
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-preflight-passed
{%- endif %}

{%- if run.bundle %}

cluster-bundle-served:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: bundle
    - tgt: {{ ("deploy." ~ cluster) | json }}
    - ssh: True
    - sls:
      - bundle_server
    - require:
      - brine_cluster: cluster-version-unchanged
{%- endif %}

{%- if run.os %}

{#- Kernel modules, sysctl, swap, /etc/hosts and base packages on every node
    (packages come from the file server the step before brought up). #}
cluster-os-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: os
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - os_base
    - require:
      - brine_cluster: cluster-bundle-served
{%- endif %}

{%- if run.runtime %}

{#- containerd (or Docker) on every node, its mirrors pointing every public
    registry name at the private registry. #}
cluster-runtime-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: runtime
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - runtime
    - require:
      - brine_cluster: cluster-os-ready
{%- endif %}

{%- if run.prefetch %}

{#- Every binary and image each node's roles need, on all nodes at once. #}
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
      - brine_cluster: cluster-runtime-ready
{%- endif %}

{%- if run.etcd %}

{#- etcd on every etcd member at once (they start together: a member is ready
    only when the cluster has a leader): the offline repository, then etcd with
    TLS, its health gate and the backup timer. Its members are read from the
    pillar now, at render time. #}
{%- set etcd_members = salt['saltutil.runner']('cluster.members', cluster=cluster, role='etcd') %}
cluster-etcd-healthy:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: etcd
    - tgt: {{ etcd_members | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - offline_repo
      - etcd
    - require:
      - brine_cluster: cluster-artifacts-prefetched
{%- endif %}
{%- set first_master = masters[:1] %}
{%- if run.kubernetes %}

{#- kubelet, kubeadm (and kubectl on masters), crictl and the CNI plugins from
    the bundle, kubelet's unit, and the API load balancer's static pod with
    every master as upstream, on every node at once. Nothing runs yet. #}
cluster-kubernetes-installed:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: kubernetes
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.installed
      - kubernetes.lb
    - require:
      - brine_cluster: cluster-etcd-healthy
{%- endif %}
{%- if run.init %}

{#- kubeadm init on the first master (external etcd, Brine's CA and keys,
    patches), the API's health gate through 127.0.0.1, the bootstrap token
    made valid for the joins. Skipped on a master that is already one. #}
cluster-control-plane-initialised:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: init
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes
    - require:
      - brine_cluster: cluster-kubernetes-installed
{%- endif %}
{%- if run.masters %}
{#- namespace(): a plain set inside a for loop does not outlive its iteration. #}
{%- set ns = namespace(previous='cluster-control-plane-initialised') %}
{%- for master in masters[1:] %}

{#- kubeadm join --control-plane, one master at a time, each gated on the API
    answering through its own load balancer. #}
cluster-master-joined-{{ master.split('.')[0] }}:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: masters
    - tgt: {{ master | json }}
    - ssh: True
    - sls:
      - kubernetes
    - require:
      - brine_cluster: {{ ns.previous }}
{%- set ns.previous = 'cluster-master-joined-' ~ master.split('.')[0] %}
{%- endfor %}

cluster-masters-joined:
  test.succeed_without_changes:
    - name: "masters in the cluster: {{ masters | map('replace', '.' ~ cluster, '') | join(', ') }}"
    - require:
      - brine_cluster: {{ ns.previous }}
{%- endif %}
{%- if run.workers %}

{#- kubeadm join on every worker at once; each first brings up its load
    balancer (kubelet's TLS bootstrap reaches the API through it). #}
cluster-workers-joined:
{%- if workers %}
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: workers
    - tgt: {{ workers | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes
{%- else %}
  {#- no workers: a no-op of the same module, so the requisites below hold #}
  salt.function:
    - name: test.true
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
{%- endif %}
    - require:
      - test: cluster-masters-joined
{%- endif %}
{%- if run.network %}

{#- The pod network on every node (host-gw: each node's CNI config and
    routes to the others' pods), then the gate: every node Ready. #}
cluster-network-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: network
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - network
    - require:
      - {{ workers_kind }}: cluster-workers-joined

cluster-nodes-ready:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: network
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.ready
    - require:
      - brine_cluster: cluster-network-ready
{%- endif %}
{%- if run.record %}

{#- The deploy settings, no secret, in kube-system/brine-cluster. #}
cluster-deploy-recorded:
  brine_cluster.applied:
    - job: {{ job | json }}
    - step: record
    - tgt: {{ first_master | json }}
    - tgt_type: list
    - ssh: True
    - sls:
      - kubernetes.record
    - require:
      - brine_cluster: cluster-nodes-ready
{%- endif %}
{%- if run.agent %}

{#- The day-2 agent (env.day2.agent): Brine packed for the masters, then on
    every node salt-minion - its key known to the masters in advance - and on
    the masters salt-master with this cluster's pillar and the onboarding
    reactors. From here the cluster onboards, corrects and removes its own
    nodes. #}
cluster-agent-payload-ready:
  brine_cluster.agent_payload_ready:
    - job: {{ job | json }}
    - step: agent
    - cluster: {{ cluster | json }}
    - require:
      - brine_cluster: cluster-deploy-recorded

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
{%- endif %}

{#- Last, whatever failed (no requisites): the job's report and its summary table. #}
cluster-report-written:
  brine_cluster.report_written:
    - cluster: {{ cluster | json }}
    - job: {{ job | json }}
    {#- Steps with nothing to do record nothing: masters with one master, workers with none. #}
    - plan: {{ steps[:last + 1] | reject('in', ([] if masters | length > 1 else ['masters']) + ([] if workers else ['workers'])) | list | json }}
    - order: last
