"""
Orchestrate steps that run a ``cluster.*`` runner check on the deploy node.

Unlike ``salt.runner``, a step reports only what it changed (a check: nothing),
so a re-run of an orchestrate on a converged cluster says "0 changes"; the
runner's report lines become the state's comment, one per line. Checks are
read-only, so ``test=True`` runs them too and predicts truthfully.

Example (in an orchestrate SLS):

.. code-block:: yaml

    cluster-pillar-valid:
      brine_cluster.check_passed:
        - check: validate
        - cluster: demo
"""

import sys
import time

import brine_report

__virtualname__ = "brine_cluster"

CHECKS = ("validate", "reach", "egress", "preflight", "upgrade_plan", "version_unchanged")


def __virtual__():
    return __virtualname__


def check_passed(name, check, cluster, nodes=None, job=None, step=None):
    """
    Ensure the runner check ``cluster.<check>`` passes for ``cluster``.

    name
        The state's id.
    check
        One of: validate, reach, egress, preflight, upgrade_plan, version_unchanged.
    cluster
        The cluster's name (its folder under pillar/clusters/).
    nodes
        preflight only: check just these nodes (a node being added).
    job, step
        The cluster job folder and step name to record this step under (the
        deploy report); optional.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if check not in CHECKS:
        ret["comment"] = f"check: '{check}' is not one of {', '.join(CHECKS)}"
        return ret
    if nodes:
        if check != "preflight":
            ret["comment"] = "nodes: only the preflight check takes a list of nodes"
            return ret
        return _run(ret, check, cluster, job=job, step=step, nodes=nodes)
    return _run(ret, check, cluster, job=job, step=step)


def agent_payload_ready(name, cluster, job=None, step=None):
    """
    Ensure the day-2 agent's payload (Brine for the cluster's masters) is packed
    and served to salt-ssh (``salt-run cluster.agent_payload``); a change only
    when Brine changed since the last deploy.

    name
        The state's id.
    cluster
        The cluster's name.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if __opts__["test"]:
        ret.update(result=None, comment="cluster.agent_payload would pack Brine for the masters")
        return ret
    return _run(ret, "agent_payload", cluster, job=job, step=step)


def _progress(step, node, result, changed, seconds, note=""):
    """One progress line per step and node, on stderr (stdout may be --out=json)."""
    word = {True: "ok", False: "FAILED", None: "would change"}.get(result, "?")
    print(f"[brine] {step:<10} {node:<10} {word:<12} {changed:>3} changed {seconds:>6.1f} s{note}",
          file=sys.stderr, flush=True)


def _record(job, step, node, start, result, changed, comment):
    if job and step:
        brine_report.record_step(job, {"step": step, "node": node, "start": start, "end": time.time(),
                                       "result": result, "changed": changed, "comment": comment})
        _progress(step, node, result, changed, time.time() - start)


def _run(ret, function, cluster, job=None, step=None, **kwargs):
    started = time.time()
    _run_inner(ret, function, cluster, **kwargs)
    _record(job, step, "deploy", started, ret["result"], 1 if ret["changes"] else 0,
            ret["comment"] if ret["result"] is False else ret["comment"].splitlines()[-1:][0] if ret["comment"] else "")
    return ret


def _run_inner(ret, function, cluster, **kwargs):
    out = __salt__["saltutil.runner"](f"cluster.{function}", cluster=cluster, full_return=True, **kwargs)
    report = out.get("return") if isinstance(out, dict) else None
    if isinstance(report, dict) and "lines" in report:
        ret["comment"] = "\n".join(report["lines"])
        ret["result"] = report.get("retcode", 1) == 0
        ret["changes"] = report.get("changes") or {}
    else:
        ret["comment"] = f"cluster.{function} did not report: {report!r}"
    return ret


def secrets_present(name, cluster, job=None, step=None):
    """
    Ensure the cluster's secrets exist on the deploy side (``salt-run cluster.secrets``);
    made once, reported as changes only when made. Nothing secret is in the report.

    name
        The state's id.
    cluster
        The cluster's name.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if __opts__["test"]:
        ret.update(result=None, comment=f"cluster.secrets would make what {cluster} lacks")
        return ret
    return _run(ret, "secrets", cluster, job=job, step=step)


def etcd_snapshot_staged(name, cluster, snapshot=""):
    """
    Ensure one etcd snapshot is staged on every etcd member of ``cluster``
    (``salt-run cluster.etcd_snapshot_stage``): ``snapshot``, a file name in
    the members' backup folder or an absolute path, or by default the newest
    backup any member holds. Step of ``cluster.etcd_restore``; etcd itself is
    not touched.

    name
        The state's id.
    cluster
        The cluster's name.
    snapshot
        The snapshot to restore; empty for the newest.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if __opts__["test"]:
        ret.update(result=None, comment=f"cluster.etcd_snapshot_stage would stage {snapshot or 'the newest snapshot'} "
                                        f"on every etcd member of {cluster}")
        return ret
    return _run(ret, "etcd_snapshot_stage", cluster, snapshot=snapshot or None)


def _failure_lines(minion, m_ret):
    """What went wrong on one machine, one line per failed state (or the errors it returned instead of states)."""
    if isinstance(m_ret, (list, tuple)):
        return [f"{minion}: {item}" for item in m_ret] or [f"{minion}: returned an empty error list"]
    if not isinstance(m_ret, dict):
        return [f"{minion}: returned {m_ret!r} instead of state results"]
    lines = []
    for key, result in sorted(m_ret.items(), key=lambda item: item[1].get("__run_num__", 0)
                              if isinstance(item[1], dict) else 0):
        if isinstance(result, dict) and result.get("result") is False \
                and not str(result.get("comment", "")).startswith("One or more requisite failed"):
            lines.append(f"{minion}: {result.get('__id__', key)}: {result.get('comment', '')}")
    return lines


def applied(name, tgt, sls, tgt_type="glob", ssh=False, pillar=None, job=None, step=None, timeout=None):
    """
    Apply the SLS ``sls`` to the machines ``tgt`` matches (over salt-ssh with
    ``ssh``, else over their minions) - ``salt.state`` as Brine's orchestrates
    use it, and also: every machine's failure in the comment, including a
    machine that returned errors instead of states (a render or pillar error:
    ``salt.state`` raises there and says nothing); a progress line per machine
    on stderr; with ``job``/``step``, a record per machine for the job's report
    (start, end, result, how many states changed, the failures). The changes
    are ``salt.state``'s: ``{"out": "highstate", "ret": {machine: states}}``.

    name
        The state's id.
    tgt, tgt_type
        Which machines, as salt.state takes them.
    sls
        One SLS or a list.
    pillar
        Pillar data merged over the machines' own for this run.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    mods = ",".join(sls) if isinstance(sls, list) else sls
    kwarg = {"queue": False, "concurrent": False}
    if pillar:
        kwarg["pillar"] = pillar
    if __opts__.get("test"):
        kwarg["test"] = True
    started = time.time()
    cmd_ret = __salt__["saltutil.cmd"](tgt, "state.sls", arg=[mods], kwarg=kwarg, tgt_type=tgt_type, ssh=ssh,
                                        timeout=timeout, expect_minions=True)
    failed, changed_on, detail = [], {}, []
    for minion, mdata in sorted((cmd_ret or {}).items()):
        m_ret = mdata.get("ret", mdata.get("return")) if isinstance(mdata, dict) else mdata
        if isinstance(mdata, dict) and mdata.get("failed"):
            m_ret = m_ret if m_ret is not None else "no return (the machine did not answer)"
        node = minion.split(".")[0]
        ok = isinstance(m_ret, dict) and bool(m_ret) and all(
            not isinstance(r, dict) or r.get("result") is not False for r in m_ret.values())
        changed = sum(1 for r in m_ret.values() if isinstance(r, dict) and r.get("changes")) \
            if isinstance(m_ret, dict) else 0
        lines = [] if ok else _failure_lines(minion, m_ret)
        if not ok:
            failed.append(minion)
            detail += lines
        if changed or not ok:
            changed_on[minion] = m_ret
        result = (None if __opts__.get("test") and changed else True) if ok else False
        summary = "\n".join(lines) if lines else f"{changed} of {len(m_ret)} states changed"
        if job and step:
            _record(job, step, node, started, result, changed, summary)
        else:
            _progress(name, node, result, changed, time.time() - started)
    if not cmd_ret:
        failed.append(str(tgt))
        detail.append(f"{tgt}: no machine answered")
    if changed_on:
        ret["changes"] = {"out": "highstate", "ret": changed_on}
    if failed:
        ret["result"] = False
        ret["comment"] = f"Run failed on: {', '.join(failed)}\n" + "\n".join(detail)
    else:
        quiet = sorted(set(cmd_ret) - set(changed_on))
        ret["comment"] = "States ran successfully." + (f" Updating {', '.join(sorted(changed_on))}." if changed_on else "") \
            + (f" No changes made to {', '.join(quiet)}." if quiet else "")
        if __opts__.get("test") and changed_on:
            ret["result"] = None
    return ret


def report_written(name, cluster, job, plan=None):
    """
    Write the job's report (report.html and timeline.png in its folder) and
    mark the job done or failed from what its steps recorded; print the final
    summary table on stderr. Runs last in an orchestrate whatever failed
    (``order: last``, no requisites). Changes nothing on any machine.

    name
        The state's id.
    cluster
        The cluster's name.
    job
        The job folder (from ``cluster.job_begin``).
    plan
        The steps the orchestrate meant to run, in order (those that did not run
        are shown as such).
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    _run_inner(ret, "report_write", cluster, job=job, plan=plan or [])
    if ret["result"]:
        print(ret["comment"], file=sys.stderr, flush=True)
        ret["comment"] = ret["comment"].splitlines()[-1]
    return ret
