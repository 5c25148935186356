"""
The report of a cluster job (``cluster.deploy``, ``cluster.node_add`` ...): what
each step did on each node and when, as a self-contained HTML page with a PNG
timeline (matplotlib), written into the job's folder. Where matplotlib is not
installed (a cluster's own masters, whose agent carries only salt) the
timeline is an SVG drawn here, embedded the same way.

Steps record themselves while the orchestrate runs (``steps.jsonl`` in the job
folder, one JSON object per step and node): ``step``, ``node``, ``start`` and
``end`` (epoch seconds), ``result`` (true, false, null for test mode),
``changed`` (how many states changed), ``comment`` (the failures' messages, or
a one-line summary). Nothing in a record may be secret; :func:`scrub` removes
every secret value the deploy side knows once more before anything is written.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
from typing import Any

STEPS = "steps.jsonl"
REPORT = "report.html"
TIMELINE = "timeline.png"
TIMELINE_SVG = "timeline.svg"
REDACTED = "<redacted>"


def record_step(job_folder: str, record: dict[str, Any]) -> None:
    """Append one step record (see the module's docstring)."""
    with open(os.path.join(job_folder, STEPS), "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True, default=str) + "\n")


def load_steps(job_folder: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(job_folder, STEPS), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except OSError:
        return []


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value (and each line of a multi-line one, such as a PEM key) replaced."""
    for secret in sorted((s for s in secrets if s and len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        for line in secret.splitlines():
            if len(line.strip()) >= 16 and "-----" not in line:
                text = text.replace(line.strip(), REDACTED)
    return text


def _clock(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%H:%M:%S")


def summary(steps: list[dict[str, Any]], plan: list[str]) -> list[dict[str, Any]]:
    """One row per planned step (in plan order, then any other): nodes, result, changes, start, seconds."""
    rows = []
    names = list(plan) + sorted({s["step"] for s in steps} - set(plan))
    for name in names:
        mine = [s for s in steps if s["step"] == name]
        if not mine:
            rows.append({"step": name, "nodes": [], "result": "not run", "changed": 0, "start": None, "seconds": None})
            continue
        results = [s.get("result") for s in mine]
        result = "failed" if False in results else ("would change" if None in results else "ok")
        start, end = min(s["start"] for s in mine), max(s["end"] for s in mine)
        rows.append({"step": name, "nodes": sorted({s["node"] for s in mine}), "result": result,
                     "changed": sum(int(s.get("changed") or 0) for s in mine), "start": start,
                     "seconds": round(end - start, 1)})
    return rows


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The final summary as plain text, one line per step."""
    lines = [f"{'step':<12} {'result':<13} {'changed':>7} {'seconds':>8}  nodes"]
    for row in rows:
        seconds = f"{row['seconds']:.1f}" if row["seconds"] is not None else "-"
        lines.append(f"{row['step']:<12} {row['result']:<13} {row['changed']:>7} {seconds:>8}  "
                     f"{', '.join(row['nodes']) or '-'}")
    total = [r for r in rows if r["start"] is not None]
    if total:
        began = min(r["start"] for r in total)
        ended = max(r["start"] + r["seconds"] for r in total)
        lines.append(f"{'total':<12} {'':<13} {sum(r['changed'] for r in rows):>7} {ended - began:>8.1f}")
    return "\n".join(lines)


def _timeline_rows(steps: list[dict[str, Any]], plan: list[str]) -> tuple[list[str], list[str], float]:
    """The timeline's nodes (deploy first), its steps in plan order, and when the job began."""
    nodes = sorted({s["node"] for s in steps}, key=lambda n: (n != "deploy", n))
    order = [p for p in plan if any(s["step"] == p for s in steps)]
    order += sorted({s["step"] for s in steps} - set(order))
    return nodes, order, min((s["start"] for s in steps), default=0.0)


#: tab20's first colours, for the SVG timeline (the PNG uses matplotlib's own).
_SVG_COLOURS = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
                "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
                "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"]


def timeline_svg(steps: list[dict[str, Any]], plan: list[str], title: str) -> str:
    """The same timeline as :func:`timeline_png`, as an SVG document (no plotting library needed)."""
    nodes, order, began = _timeline_rows(steps, plan)
    span = max((s["end"] - began for s in steps), default=1.0) or 1.0
    left, width, row_height, top = 140, 860, 24, 40
    scale = width / span
    height = top + row_height * max(len(nodes), 1) + 40 + 18 * ((len(order) + 3) // 4)
    esc = html.escape
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{left + width + 20}' height='{height}' "
           f"font-family='sans-serif' font-size='12'>",
           f"<text x='{left}' y='20' font-size='14'>{esc(title)}</text>"]
    for row, node in enumerate(nodes):
        y = top + row * row_height
        out.append(f"<text x='{left - 8}' y='{y + 15}' text-anchor='end'>{esc(node)}</text>")
        for record in (s for s in steps if s["node"] == node):
            index = order.index(record["step"])
            failed = record.get("result") is False
            out.append(f"<rect x='{left + (record['start'] - began) * scale:.1f}' y='{y + 3}' "
                       f"width='{max((record['end'] - record['start']) * scale, 1.0):.1f}' height='{row_height - 6}' "
                       f"fill='{_SVG_COLOURS[index % 20]}' stroke='{'red' if failed else 'black'}' "
                       f"stroke-width='{2 if failed else 0.4}'><title>{esc(record['step'])} on {esc(node)}: "
                       f"{record['end'] - record['start']:.1f} s</title></rect>")
    axis_y = top + row_height * max(len(nodes), 1) + 14
    for tick in range(0, int(span) + 1, max(int(span / 10), 1)):
        out.append(f"<text x='{left + tick * scale:.1f}' y='{axis_y}' text-anchor='middle'>{tick}</text>")
    out.append(f"<text x='{left + width / 2}' y='{axis_y + 16}' text-anchor='middle'>seconds since the job began"
               "</text>")
    for index, step in enumerate(order):
        x, y = left + (index % 4) * 215, axis_y + 36 + 18 * (index // 4)
        out.append(f"<rect x='{x}' y='{y - 10}' width='12' height='12' fill='{_SVG_COLOURS[index % 20]}'/>"
                   f"<text x='{x + 16}' y='{y}'>{esc(step)}</text>")
    out.append("</svg>")
    return "\n".join(out)


def timeline_png(steps: list[dict[str, Any]], plan: list[str], title: str) -> bytes | None:
    """Per-node, per-step bars on one time axis (seconds since the job began), as PNG
    bytes; None where matplotlib is not installed."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    nodes, order, began = _timeline_rows(steps, plan)
    colours = plt.get_cmap("tab20")
    fig, axis = plt.subplots(figsize=(12, 0.45 * max(len(nodes), 3) + 1.6), dpi=100)
    for row, node in enumerate(nodes):
        for record in (s for s in steps if s["node"] == node):
            index = order.index(record["step"])
            width = max(record["end"] - record["start"], 0.3)
            failed = record.get("result") is False
            axis.barh(row, width, left=record["start"] - began, height=0.6, color=colours(index % 20),
                      edgecolor="red" if failed else "black", linewidth=2 if failed else 0.4)
    axis.set_yticks(range(len(nodes)), labels=nodes)
    axis.invert_yaxis()
    axis.set_xlabel("seconds since the job began")
    axis.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i % 20)) for i in range(len(order))]
    axis.legend(handles, order, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=min(len(order), 8),
                fontsize="small", frameon=False)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()


def html_report(job: dict[str, Any], steps: list[dict[str, Any]], plan: list[str], facts: dict[str, str],
                timeline_mime: str, timeline: bytes) -> str:
    """The whole report as one HTML page (the timeline, of type ``timeline_mime``,
    embedded), see the module's docstring."""
    rows = summary(steps, plan)
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>Brine {esc(job.get('kind', 'job'))} {esc(job.get('id', ''))}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left;vertical-align:top}"
        "td.failed{background:#fdd}td.ok{background:#dfd}td.notrun{color:#888}pre{white-space:pre-wrap;margin:0}"
        "</style></head><body>",
        f"<h1>{esc(job.get('kind', 'job'))} of cluster {esc(facts.get('cluster', ''))}: "
        f"<span id='state'>{esc(job.get('state', ''))}</span></h1>",
        "<table id='facts'>",
    ]
    for key, value in [("job", job.get("id", "")), ("started", job.get("started") or ""),
                       ("ended", job.get("ended") or ""), *facts.items()]:
        parts.append(f"<tr><th>{esc(str(key))}</th><td>{esc(str(value))}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Timeline</h2>")
    parts.append(f"<img id='timeline' alt='per-node, per-step timeline' src='data:{timeline_mime};base64,"
                 f"{base64.b64encode(timeline).decode()}'>")
    parts.append("<h2>Steps</h2><table id='steps'><tr><th>step</th><th>result</th><th>changed</th>"
                 "<th>started</th><th>seconds</th><th>nodes</th></tr>")
    for row in rows:
        css = {"failed": "failed", "ok": "ok", "not run": "notrun"}.get(row["result"], "")
        parts.append(
            f"<tr class='step' data-step='{esc(row['step'])}'><td>{esc(row['step'])}</td>"
            f"<td class='{css}'>{esc(row['result'])}</td><td>{row['changed']}</td>"
            f"<td>{_clock(row['start']) if row['start'] else '-'}</td>"
            f"<td>{row['seconds'] if row['seconds'] is not None else '-'}</td>"
            f"<td>{esc(', '.join(row['nodes']) or '-')}</td></tr>")
    parts.append("</table>")
    nodes = sorted({s["node"] for s in steps})
    parts.append("<h2>Each node</h2><table id='nodes'><tr><th>node</th><th>step</th><th>result</th>"
                 "<th>changed</th><th>started</th><th>seconds</th><th>what happened</th></tr>")
    for node in nodes:
        for record in sorted((s for s in steps if s["node"] == node), key=lambda s: s["start"]):
            result = {True: "ok", False: "failed", None: "would change"}.get(record.get("result"), "?")
            parts.append(
                f"<tr class='cell' data-node='{esc(node)}' data-step='{esc(record['step'])}'>"
                f"<td>{esc(node)}</td><td>{esc(record['step'])}</td>"
                f"<td class='{'failed' if result == 'failed' else 'ok'}'>{result}</td>"
                f"<td>{int(record.get('changed') or 0)}</td><td>{_clock(record['start'])}</td>"
                f"<td>{record['end'] - record['start']:.1f}</td>"
                f"<td><pre>{esc(str(record.get('comment') or ''))}</pre></td></tr>")
    parts.append("</table>")
    failures = [s for s in steps if s.get("result") is False]
    parts.append(f"<h2>Failures</h2><div id='failures'>{'none' if not failures else ''}")
    for record in failures:
        parts.append(f"<h3>{esc(record['step'])} on {esc(record['node'])}</h3>"
                     f"<pre>{esc(str(record.get('comment') or ''))}</pre>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write(job_folder: str, job: dict[str, Any], plan: list[str], facts: dict[str, str],
          secrets: list[str]) -> tuple[str, str]:
    """Write report.html and the timeline (timeline.png, or timeline.svg without
    matplotlib) into ``job_folder`` (0600); return their paths."""
    steps = load_steps(job_folder)
    for record in steps:
        record["comment"] = scrub(str(record.get("comment") or ""), secrets)
    title = f"{job.get('kind', 'job')} {job.get('id', '')}"
    png = timeline_png(steps, plan, title)
    timeline_name, mime, timeline = ((TIMELINE, "image/png", png) if png else
                                     (TIMELINE_SVG, "image/svg+xml", timeline_svg(steps, plan, title).encode()))
    page = scrub(html_report(job, steps, plan, facts, mime, timeline), secrets)
    paths = []
    for name, data in ((timeline_name, timeline), (REPORT, page.encode())):
        path = os.path.join(job_folder, name)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(path + ".tmp", path)
        paths.append(path)
    return paths[1], paths[0]


def _started_epoch(clock: str, anchor: float) -> float:
    """An orchestrate step's ``start_time`` (local HH:MM:SS.ffffff, no date) as epoch
    seconds: the first such moment not more than an hour before ``anchor``."""
    moment = datetime.datetime.strptime(clock, "%H:%M:%S.%f").time()
    day = datetime.datetime.fromtimestamp(anchor).date()
    epoch = datetime.datetime.combine(day, moment).timestamp()
    return epoch + 86400 if epoch < anchor - 3600 else epoch


def records_from_orchestrate(steps: dict[str, dict[str, Any]], anchor: float, runner_node: str,
                             prefix: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """
    Step records (see the module's docstring) from an orchestrate's results by
    state id, for an orchestrate whose steps do not record themselves
    (``cluster.node_add``): one per minion a ``salt.state`` step applied states
    on, one on ``runner_node`` for any other step. ``anchor``: about when the
    run began (epoch). Returns the records and the plan (every step, in run
    order, ``prefix`` removed); a step that did not run (a requisite failed)
    has no record, so the report shows it as not run.
    """
    records, plan = [], []
    for key, step in sorted(steps.items(), key=lambda item: item[1].get("__run_num__", 0)):
        step_id = step.get("__id__") or key
        name = step_id[len(prefix):] if prefix and step_id.startswith(prefix) else step_id
        plan.append(name)
        if step.get("__state_ran__") is False or not step.get("start_time"):
            continue
        start = _started_epoch(step["start_time"], anchor)
        end = start + float(step.get("duration") or 0) / 1000
        ret = (step.get("changes") or {}).get("ret")
        per_minion = {m: r for m, r in ret.items() if isinstance(r, dict)} if isinstance(ret, dict) else {}
        if not per_minion or not all(isinstance(v, dict) for r in per_minion.values() for v in r.values()):
            records.append({"step": name, "node": runner_node, "start": start, "end": end,
                            "result": step.get("result"), "changed": 1 if step.get("changes") else 0,
                            "comment": str(step.get("comment") or "")[:4000]})
            continue
        for minion, states in per_minion.items():
            failed = [f"{v.get('__id__', k)}: {v.get('comment', '')}" for k, v in states.items()
                      if v.get("result") is False]
            changed = sum(1 for v in states.values() if v.get("changes"))
            records.append({"step": name, "node": minion.partition(".")[0], "start": start, "end": end,
                            "result": not failed, "changed": changed,
                            "comment": "\n".join(failed)[:4000] if failed
                            else f"{changed} of {len(states)} states changed"})
    return records, plan
