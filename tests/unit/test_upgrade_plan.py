"""
cluster.upgrade's plan (``brine_versions.upgrade_plan``): what Kubernetes allows
- one minor at a time, never down - decided before any node is touched, each
refusal naming the field and the way forward.
"""

import brine_versions
import pytest

MASTERS = ("master1", "master2", "master3")


def running(control_plane, kubelets=None, workers=("worker1", "worker2")):
    cp = dict.fromkeys(MASTERS, control_plane)
    return cp, {**cp, **dict.fromkeys(workers, kubelets or control_plane)}


def test_one_minor_up_is_planned_from_the_oldest_component():
    problems, lines, to_do = brine_versions.upgrade_plan("1.37.2", *running("v1.36.3"))
    assert not problems and to_do
    assert lines[-1] == "upgrade to v1.37.2: from v1.36.3"


def test_a_patch_release_is_an_upgrade_too():
    problems, _, to_do = brine_versions.upgrade_plan("v1.37.3", *running("v1.37.2"))
    assert not problems and to_do


def test_nothing_to_do_when_everything_runs_the_target():
    problems, lines, to_do = brine_versions.upgrade_plan("v1.37.2", *running("v1.37.2"))
    assert not problems and not to_do
    assert "nothing to upgrade" in lines[-1]


def test_a_run_cut_off_halfway_resumes_with_the_workers_still_old():
    problems, _, to_do = brine_versions.upgrade_plan("v1.37.2", *running("v1.37.2", kubelets="v1.36.3"))
    assert not problems and to_do


@pytest.mark.parametrize("running_version, target", [("v1.35.4", "v1.37.2"), ("v1.20.2", "v1.36.3")])
def test_a_skip_of_more_than_one_minor_is_refused_naming_the_next_step(running_version, target):
    problems, _, to_do = brine_versions.upgrade_plan(target, *running(running_version))
    assert not to_do and len(problems) == 1
    minor = int(running_version.split(".")[1]) + 1
    assert problems[0].startswith("env.kubernetes_version: ")
    assert f"first to v1.{minor}.x, then to {target}" in problems[0]


def test_a_worker_left_two_minors_behind_is_refused_by_name():
    cp, kubelets = running("v1.36.3")
    kubelets["worker2"] = "v1.35.0"
    problems, _, _ = brine_versions.upgrade_plan("v1.37.2", cp, kubelets)
    assert len(problems) == 1 and "worker2 (kubelet)" in problems[0] and "master1" not in problems[0]


def test_a_downgrade_is_refused():
    problems, _, to_do = brine_versions.upgrade_plan("v1.36.3", *running("v1.37.2"))
    assert not to_do
    assert problems == ["env.kubernetes_version: v1.36.3 is older than what master1 (control plane), master1 "
                        "(kubelet), master2 (control plane), master2 (kubelet), master3 (control plane), master3 "
                        "(kubelet), worker1 (kubelet), worker2 (kubelet) runs (v1.37.2); Kubernetes cannot be "
                        "downgraded: set it to v1.37.2 or newer"]


def test_a_cluster_not_deployed_is_sent_to_cluster_deploy():
    problems, _, to_do = brine_versions.upgrade_plan("v1.37.2", {}, {})
    assert not to_do and "cluster.deploy" in problems[0]


def test_an_unreadable_version_is_named():
    problems, _, _ = brine_versions.upgrade_plan("v1.37.2", {"master1": "latest"}, {"master1": "v1.36.3"})
    assert problems == ["master1 (control plane): runs 'latest', not a version Brine can read"]
