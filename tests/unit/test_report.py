"""
The job report from step records alone: every step and node present, steps
that did not run shown as such, failures with their messages, the timeline a
real PNG drawn by matplotlib, and no secret value anywhere.
"""

from __future__ import annotations

import datetime
import html.parser
import io
import os
import sys
from xml.etree import ElementTree

import brine_report
from PIL import Image

PLAN = ["validate", "os", "etcd", "workers", "record"]
SECRET_KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"


def records(tmp_path):
    folder = str(tmp_path)
    for step, node, start, end, result, changed, comment in [
        ("validate", "deploy", 100.0, 101.0, True, 0, "pillar valid"),
        ("os", "master1", 101.0, 110.0, True, 12, "12 of 40 states changed"),
        ("os", "worker1", 101.0, 112.5, True, 12, "12 of 40 states changed"),
        ("etcd", "master1", 113.0, 130.0, False, 3,
         "master1.demo: etcd-healthy: token abcdef.0123456789abcdef rejected; key MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"),
    ]:
        brine_report.record_step(folder, {"step": step, "node": node, "start": start, "end": end, "result": result,
                                          "changed": changed, "comment": comment})
    return folder


class Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.steps, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and attrs.get("class") == "cell":
            self.cells.append((attrs["data-node"], attrs["data-step"]))
        if tag == "tr" and attrs.get("class") == "step":
            self.steps.append(attrs["data-step"])
        if tag == "img":
            self.images.append(attrs["src"])


def test_summary_marks_failed_and_not_run_steps(tmp_path):
    rows = {r["step"]: r for r in brine_report.summary(brine_report.load_steps(records(tmp_path)), PLAN)}
    assert rows["os"]["result"] == "ok" and rows["os"]["changed"] == 24 and rows["os"]["seconds"] == 11.5
    assert rows["etcd"]["result"] == "failed"
    assert rows["workers"]["result"] == "not run" and rows["record"]["result"] == "not run"
    table = brine_report.summary_table(list(rows.values()))
    assert table.splitlines()[-1].split()[:3] == ["total", "27", "30.0"]


def test_report_has_every_node_and_step_and_no_secret(tmp_path):
    folder = records(tmp_path)
    job = {"id": "20261127T100000Z-deploy-demo-abc123", "kind": "deploy", "state": "failed",
           "started": "2026-11-27T10:00:00+00:00", "ended": "2026-11-27T10:00:30+00:00"}
    report, timeline = brine_report.write(folder, job, PLAN, {"cluster": "demo", "Kubernetes": "1.37.2"},
                                          ["abcdef.0123456789abcdef", SECRET_KEY])
    with open(report, encoding="utf-8") as handle:
        page = handle.read()
    parser = Cells()
    parser.feed(page)
    assert set(parser.cells) == {("deploy", "validate"), ("master1", "os"), ("worker1", "os"), ("master1", "etcd")}
    assert parser.steps == PLAN
    assert "abcdef.0123456789abcdef" not in page and "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" not in page
    assert "etcd-healthy: token &lt;redacted&gt; rejected" in page
    assert "id='failures'" in page and "etcd on master1" in page
    with open(timeline, "rb") as handle:
        png = handle.read()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as image:
        assert image.size[0] >= 1000 and image.size[1] >= 200
    assert parser.images[0].startswith("data:image/png;base64,")
    assert oct(os.stat(report).st_mode & 0o777) == "0o600"


def test_without_matplotlib_the_timeline_is_an_svg_in_the_same_report(tmp_path, monkeypatch):
    # A cluster's own masters carry salt only: node_add reports are drawn without matplotlib.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    folder = records(tmp_path)
    job = {"id": "20261127T100000Z-node_add-worker3-abc123", "kind": "node_add", "state": "failed"}
    report, timeline = brine_report.write(folder, job, PLAN, {"cluster": "demo"}, ["abcdef.0123456789abcdef"])
    assert timeline.endswith("timeline.svg") and not os.path.exists(os.path.join(folder, "timeline.png"))
    svg = ElementTree.parse(timeline).getroot()
    bars = [r for r in svg.iter("{http://www.w3.org/2000/svg}rect") if r.find("{http://www.w3.org/2000/svg}title")
            is not None]
    assert sorted(b.find("{http://www.w3.org/2000/svg}title").text.split(":")[0] for b in bars) == [
        "etcd on master1", "os on master1", "os on worker1", "validate on deploy"]
    assert [b.get("stroke") for b in bars if b.find("{http://www.w3.org/2000/svg}title").text.startswith("etcd")] \
        == ["red"]
    with open(report, encoding="utf-8") as handle:
        page = handle.read()
    parser = Cells()
    parser.feed(page)
    assert parser.images[0].startswith("data:image/svg+xml;base64,")
    assert "abcdef.0123456789abcdef" not in page
    assert oct(os.stat(timeline).st_mode & 0o777) == "0o600"


def _state(sid, result, changes=None, comment=""):
    return {"__id__": sid, "result": result, "changes": changes or {}, "comment": comment}


def test_node_add_orchestrate_results_become_step_records():
    anchor = datetime.datetime(2026, 11, 27, 23, 59, 50).timestamp()
    steps = {
        "brine_cluster_|-node-add-pillar-valid_|-x_|-check_passed": {
            "__id__": "node-add-pillar-valid", "__run_num__": 0, "result": True, "changes": {},
            "comment": "cluster demo: valid", "start_time": "23:59:55.000000", "duration": 2000.0},
        "salt_|-node-add-os-ready_|-x_|-state": {
            "__id__": "node-add-os-ready", "__run_num__": 1, "result": True, "start_time": "23:59:58.000000",
            "duration": 4500.0, "comment": "States ran successfully.",
            "changes": {"out": "highstate", "ret": {"worker3.demo": {
                "a": _state("sysctl", True, {"new": 1}), "b": _state("modules", True)}}}},
        "salt_|-node-add-joined_|-x_|-state": {
            "__id__": "node-add-joined", "__run_num__": 2, "result": False, "start_time": "00:00:03.500000",
            "duration": 10000.0, "comment": "Run failed on minions: worker3.demo",
            "changes": {"out": "highstate", "ret": {"worker3.demo": {
                "a": _state("kubeadm-joined", False, comment="kubeadm join: timed out")}}}},
        "salt_|-node-add-nodes-ready_|-x_|-state": {
            "__id__": "node-add-nodes-ready", "__run_num__": 3, "result": False, "__state_ran__": False,
            "changes": {}, "comment": "One or more requisite failed: cluster.node_add.node-add-joined"},
    }
    records, plan = brine_report.records_from_orchestrate(steps, anchor, "master1", prefix="node-add-")
    assert plan == ["pillar-valid", "os-ready", "joined", "nodes-ready"]
    by_step = {r["step"]: r for r in records}
    assert set(by_step) == {"pillar-valid", "os-ready", "joined"}
    assert by_step["pillar-valid"]["node"] == "master1" and by_step["pillar-valid"]["result"] is True
    assert by_step["os-ready"]["node"] == "worker3" and by_step["os-ready"]["changed"] == 1
    assert by_step["os-ready"]["end"] - by_step["os-ready"]["start"] == 4.5
    # The step after midnight is placed on the next day, not 24 h before the job.
    assert by_step["joined"]["start"] - anchor == 13.5
    assert by_step["joined"]["result"] is False and "kubeadm join: timed out" in by_step["joined"]["comment"]
    rows = {r["step"]: r for r in brine_report.summary(records, plan)}
    assert rows["nodes-ready"]["result"] == "not run" and rows["joined"]["result"] == "failed"
