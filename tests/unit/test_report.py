"""
The job report from step records alone: every step and node present, steps
that did not run shown as such, failures with their messages, the timeline a
real PNG drawn by matplotlib, and no secret value anywhere.
"""

from __future__ import annotations

import html.parser
import io
import os

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
