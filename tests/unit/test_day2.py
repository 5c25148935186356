"""
The day-2 agent's logic that needs no machine: what counts as drift in a
highstate's return and how cluster.drift reports it, which master acts on an
event every master receives, cluster job records, and etcd's quorum rule for a
removal.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket

import brine_day2
import pytest

from tests.saltenv import REPO_ROOT


def load_module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "_modules", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


brine_drift = load_module("brine_drift")


def state(result, changes=None, comment="", sid="x", fun="file_|-x_|-/etc/x_|-managed"):
    return {fun: {"__id__": sid, "result": result, "changes": changes or {}, "comment": comment}}


def test_a_changed_state_is_drift_an_unchanged_one_is_not():
    ret = {**state(True, {"diff": "..."}, "File /etc/x updated", sid="conf"),
           **state(True, {}, "File is in the correct state", sid="same", fun="file_|-same_|-/etc/y_|-managed"),
           **state(False, {}, "boom", sid="broken", fun="cmd_|-broken_|-true_|-run")}
    drifted, failed, count = brine_drift._summarise(ret, test=False)
    assert [d["id"] for d in drifted] == ["conf"] and drifted[0]["state"] == "file.managed"
    assert drifted[0]["changed"] == ["diff"]
    assert [f["id"] for f in failed] == ["broken"] and count == 3


def test_in_report_only_mode_a_would_change_is_drift():
    drifted, failed, _ = brine_drift._summarise(state(None, {}, "would be updated", sid="conf"), test=True)
    assert [d["id"] for d in drifted] == ["conf"] and failed == []
    drifted, _, _ = brine_drift._summarise(state(None, {}, "would be updated", sid="conf"), test=False)
    assert drifted == []


def test_a_highstate_that_did_not_run_is_a_failure():
    drifted, failed, count = brine_drift._summarise(["The function state.highstate is running as PID 42"], test=False)
    assert drifted == [] and count == 0 and "running as PID 42" in failed[0]["comment"]


def test_drift_summary_names_each_node_run_and_state():
    history = {
        "worker1": [{"time": "2026-11-27T10:00:00Z", "test": False, "drifted": [], "failed": []},
                    {"time": "2026-11-27T10:30:00Z", "test": False, "failed": [],
                     "drifted": [{"id": "os-sysctl-applied", "state": "brine_kernel.sysctl_present",
                                  "comment": "net.ipv4.ip_forward set to 1"}]}],
        "master1": [{"time": "2026-11-27T10:31:00Z", "test": True, "failed": [],
                     "drifted": [{"id": "containerd-config-managed", "state": "file.managed", "comment": "would"}]}],
    }
    assert brine_day2.drift_summary(history) == [
        "master1: 1 highstate run(s), 1 found drift; last run 2026-11-27T10:31:00Z",
        "  2026-11-27T10:31:00Z reported (test mode, not restored): containerd-config-managed (file.managed): would",
        "worker1: 2 highstate run(s), 1 found drift; last run 2026-11-27T10:30:00Z",
        "  2026-11-27T10:30:00Z restored: os-sysctl-applied (brine_kernel.sysctl_present): net.ipv4.ip_forward set to 1",
    ]


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def test_the_first_answering_master_acts(listener):
    # 127.0.0.2 answers nothing on that port (refused): skipped; 127.0.0.1 answers.
    assert brine_day2.acting_master(["127.0.0.2", "127.0.0.1", "127.0.0.3"], "127.0.0.3", listener) == "127.0.0.1"
    assert brine_day2.acting_master(["127.0.0.1", "127.0.0.3"], "127.0.0.1", listener) == "127.0.0.1"
    assert brine_day2.acting_master(["127.0.0.2", "127.0.0.3"], "127.0.0.3", listener) == "127.0.0.3"


def test_a_job_records_its_life(tmp_path):
    job = brine_day2.Job(str(tmp_path), "node_add", "worker3")
    assert brine_day2.jobs(str(tmp_path))[0]["state"] == "queued"
    job.start()
    job.log("step one")
    job.end(False, "failed at node-add-joined")
    (record,) = brine_day2.jobs(str(tmp_path))
    assert record["state"] == "failed" and record["started"] and record["ended"]
    assert record["summary"] == "failed at node-add-joined" and "-node_add-worker3-" in record["id"]
    assert oct(os.stat(job.folder).st_mode & 0o777) == "0o700"
    with open(os.path.join(job.folder, "log"), encoding="utf-8") as handle:
        assert handle.read().endswith("step one\n")


class FakeEtcd:
    def __init__(self, names, healthy):
        self.members = [{"ID": i + 1, "name": n, "clientURLs": [f"https://{n}:2379"]} for i, n in enumerate(names)]
        self.healthy = [f"https://{n}:2379" for n in healthy]

    def cmd_run_all(self, argv, **kwargs):
        if "member" in argv and "list" in argv:
            return {"retcode": 0, "stdout": json.dumps({"members": self.members}), "stderr": ""}
        if "endpoint" in argv:
            return {"retcode": 0, "stderr": "", "stdout": json.dumps(
                [{"endpoint": m["clientURLs"][0], "health": m["clientURLs"][0] in self.healthy, "took": "1ms"}
                 for m in self.members])}
        raise AssertionError(argv)


@pytest.mark.parametrize("names, healthy, leaving, allowed", [
    (["m1", "m2", "m3"], ["m1", "m2", "m3"], "m3", True),     # 2 of 2 stay
    (["m1", "m2", "m3"], ["m1", "m3"], "m3", False),          # 1 healthy of 2: no quorum
    (["m1", "m2", "m3"], ["m1", "m2"], "m3", True),           # removing the dead one
    (["m1", "m2"], ["m1", "m2"], "m2", True),                 # 1 of 1
    (["m1", "m2"], ["m1"], "m1", False),                      # the survivor would be dead
    (["m1"], ["m1"], "m1", False),                            # the last member
])
def test_etcd_removal_keeps_a_quorum_or_is_refused(names, healthy, leaving, allowed):
    brine_etcd = load_module("brine_etcd")
    fake = FakeEtcd(names, healthy)
    brine_etcd.__salt__ = {"cmd.run_all": fake.cmd_run_all}
    brine_etcd.__context__ = {}
    said = brine_etcd.removable(leaving, "ca", "cert", "key", ",".join(m["clientURLs"][0] for m in fake.members))
    assert (brine_etcd.__context__.get("retcode", 0) == 0) is allowed, said
    assert ("refused" in said) is not allowed
