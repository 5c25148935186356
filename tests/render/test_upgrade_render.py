"""
cluster.upgrade as Brine renders it for the demo cluster (3 masters, 2
workers), and the node states it applies: the plan before any change, drift
correction paused before the rolling part, the masters one at a time, then
the workers in batches, each node upgraded by kubeadm, drained, given its new
kubelet, then Ready and uncordoned - and every node fetching from its own
release line on the deploy node. Nothing here connects to any machine.
"""

import json
import os

import brine_render
import pytest
import salt.config

from tests.saltenv import SaltEnv


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("upgrade")))
    assert salt_env.salt_run("cluster.secrets", "demo").returncode == 0
    return salt_env


@pytest.fixture(scope="module")
def opts(env):
    return salt.config.master_config(os.path.join(env.config_dir, "master"))


def orchestrate(env, **pillar):
    proc = env.salt_run("state.orchestrate_show_sls", "cluster.upgrade",
                        f"pillar={json.dumps({'cluster': 'demo', **pillar})}", "--out=json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (states,) = json.loads(proc.stdout).values()
    return states


def requires(state):
    args = next(iter(v for k, v in state.items() if not k.startswith("__")))
    found = []
    for arg in args:
        if isinstance(arg, dict) and "require" in arg:
            found += [next(iter(r.values())) for r in arg["require"]]
    return found


def arg(state, key):
    args = next(iter(v for k, v in state.items() if not k.startswith("__")))
    return next(a[key] for a in args if isinstance(a, dict) and key in a)


def chain(states, last):
    """The ids from the first state to ``last`` following each state's first requisite."""
    order = [last]
    while requires(states[order[0]]):
        order.insert(0, requires(states[order[0]])[0])
    return order


def test_the_plan_comes_before_any_change_and_drift_correction_is_paused_before_the_bundle(env):
    states = orchestrate(env)
    order = chain(states, "cluster-agent-ready")
    assert order[:7] == ["cluster-pillar-valid", "cluster-secrets-present", "cluster-nodes-reachable",
                         "cluster-upgrade-planned", "cluster-drift-correction-paused", "cluster-bundle-served",
                         "cluster-artifacts-prefetched"]
    assert arg(states["cluster-upgrade-planned"], "check") == "upgrade_plan"
    assert arg(states["cluster-drift-correction-paused"], "sls") == ["day2.paused"]
    assert order[-4:] == ["cluster-upgrade-recorded", "cluster-nodes-ready", "cluster-agent-payload-ready",
                          "cluster-agent-ready"]


def test_masters_go_one_at_a_time_then_workers_one_by_default(env):
    order = chain(orchestrate(env), "cluster-upgrade-recorded")
    rolling = [i.removeprefix("cluster-upgrade-") for i in order if i.startswith("cluster-upgrade-")
               and i not in ("cluster-upgrade-planned", "cluster-upgrade-recorded")]
    expected = [f"{node}-{stage}" for node in ("master1", "master2", "master3", "worker1", "worker2")
                for stage in ("kubeadm", "drained", "kubelet", "finished")]
    assert rolling == expected


def test_workers_go_in_batches_given_on_the_command_line(env):
    states = orchestrate(env, batch=2)
    assert arg(states["cluster-upgrade-worker1-worker2-kubeadm"], "tgt") == ["worker1.demo", "worker2.demo"]
    assert arg(states["cluster-upgrade-worker1-worker2-drained"], "tgt") == ["master1.demo"]
    assert arg(states["cluster-upgrade-worker1-worker2-drained"], "pillar") == {
        "brine_upgrade": {"drain_seconds": 300, "nodes": ["worker1", "worker2"]}}
    assert "cluster-upgrade-worker1-kubeadm" not in states


def kubeadm_state(opts, minion_id):
    chunks = brine_render.low_chunks(opts, minion_id, ["kubernetes.upgrade.kubeadm"])
    return {c["__id__"]: c for c in chunks}


def test_kubeadm_upgrade_apply_on_the_first_master_node_elsewhere(opts):
    first = kubeadm_state(opts, "master1.demo")["kubernetes-upgraded-by-kubeadm"]
    other = kubeadm_state(opts, "master2.demo")["kubernetes-upgraded-by-kubeadm"]
    worker = kubeadm_state(opts, "worker1.demo")
    assert (first["first_master"], first["control_plane"], first["version"]) == (True, True, "v1.37.2")
    assert (other["first_master"], other["control_plane"]) == (False, True)
    assert worker["kubernetes-upgraded-by-kubeadm"]["control_plane"] is False
    # only kubeadm is replaced before the drain: kubelet waits for it
    binaries = [c["artifact"] for c in worker.values() if c["state"] == "brine_prefetch"]
    assert binaries == ["kubeadm"]
    assert worker["kubernetes-upgrade-kubeadm-installed"]["bundle_url"] == "http://10.77.0.1:8080/lines/1.37"


def test_drain_and_uncordon_run_on_the_first_master_for_the_round(opts):
    pillar = {"brine_upgrade": {"nodes": ["worker1", "worker2"], "drain_seconds": 120}}
    drained = brine_render.low_chunks(opts, "master1.demo", ["kubernetes.upgrade.drained"], pillar=pillar)
    assert [(c["fun"], c["name"], c["timeout"]) for c in drained] == [("drained", "worker1", 120),
                                                                     ("drained", "worker2", 120)]
    finished = brine_render.low_chunks(opts, "master1.demo", ["kubernetes.upgrade.finished"], pillar=pillar)
    assert [(c["fun"], c["name"], c["version"]) for c in finished] == [("upgrade_finished", "worker1", "v1.37.2"),
                                                                      ("upgrade_finished", "worker2", "v1.37.2")]


def test_kubelet_is_restarted_when_it_runs_a_replaced_binary(opts):
    chunks = {c["__id__"]: c for c in brine_render.low_chunks(opts, "worker1.demo", ["kubernetes.upgrade.kubelet"])}
    restart = chunks["kubernetes-upgrade-kubelet-restarted"]
    assert "systemctl restart kubelet" in restart["name"] and "(deleted)" in restart["onlyif"]


def test_every_node_fetches_from_its_cluster_release_line(opts):
    chunks = brine_render.low_chunks(opts, "worker1.demo", ["prefetch", "offline_repo"])
    prefetch = next(c for c in chunks if c["__id__"] == "artifacts-prefetched")
    assert prefetch["name"] == "http://10.77.0.1:8080/lines/1.37"
    files = {f.path: f.text for f in brine_render.render_states(opts, "worker1.demo", mods=["offline_repo"])}
    assert "http://10.77.0.1:8080/lines/1.37/debs" in files["/etc/apt/sources.list.d/brine.list"]


def test_the_deploy_node_serves_every_release_line(opts):
    files = {f.path: f.text for f in brine_render.render_states(opts, "deploy.demo", mods=["bundle_server"])}
    conf = files["/etc/nginx/conf.d/brine-file-server.conf"]
    assert "location /lines/ {\n        alias /srv/brine/bundles/lines/;" in conf
    assert "location / {\n        alias /srv/brine/bundles/current/;" in conf


def test_pausing_drift_correction_writes_the_reason_given(opts):
    chunks = brine_render.low_chunks(opts, "worker1.demo", ["day2.paused"],
                                     pillar={"brine_pause_reason": "cluster.upgrade to v1.37.2"})
    (paused,) = chunks
    assert (paused["name"], paused["contents"], paused["mode"]) == (
        "/var/lib/brine/drift.paused", "cluster.upgrade to v1.37.2", "0600")


def test_the_deploy_refuses_a_running_cluster_of_another_version_before_the_bundle(env):
    proc = env.salt_run("state.orchestrate_show_sls", "cluster.deploy", 'pillar={"cluster": "demo"}', "--out=json")
    (states,) = json.loads(proc.stdout).values()
    assert arg(states["cluster-version-unchanged"], "check") == "version_unchanged"
    assert requires(states["cluster-bundle-served"]) == ["cluster-version-unchanged"]
    # each master joins only after the one before it did (a failed join stops the rest)
    assert requires(states["cluster-master-joined-master3"]) == ["cluster-master-joined-master2"]
    assert requires(states["cluster-masters-joined"]) == ["cluster-master-joined-master3"]
