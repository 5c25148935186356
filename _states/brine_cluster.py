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

__virtualname__ = "brine_cluster"

CHECKS = ("validate", "reach", "egress", "preflight")


def __virtual__():
    return __virtualname__


def check_passed(name, check, cluster):
    """
    Ensure the runner check ``cluster.<check>`` passes for ``cluster``.

    name
        The state's id.
    check
        One of: validate, reach, egress, preflight.
    cluster
        The cluster's name (its folder under pillar/clusters/).
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if check not in CHECKS:
        ret["comment"] = f"check: '{check}' is not one of {', '.join(CHECKS)}"
        return ret
    return _run(ret, check, cluster)


def _run(ret, function, cluster, **kwargs):
    out = __salt__["saltutil.runner"](f"cluster.{function}", cluster=cluster, full_return=True, **kwargs)
    report = out.get("return") if isinstance(out, dict) else None
    if isinstance(report, dict) and "lines" in report:
        ret["comment"] = "\n".join(report["lines"])
        ret["result"] = report.get("retcode", 1) == 0
        ret["changes"] = report.get("changes") or {}
    else:
        ret["comment"] = f"cluster.{function} did not report: {report!r}"
    return ret


def secrets_present(name, cluster):
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
    return _run(ret, "secrets", cluster)


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
