"""
Drift correction on a node of a Brine cluster: the node's highstate, run by
the day-2 agent's schedule (env.day2.highstate_minutes), with what each run
found kept on the node itself in ``/var/lib/brine/drift.jsonl`` - so the
record survives the loss of any master, and ``salt-run cluster.drift <name>``
on a master gathers every node's.

A state counts as drift when the highstate changed it (or, in report-only mode,
``test=True``, would have). Records hold state ids, their comments and the
names of what changed - never a file's content (Brine's states that write
secrets show no diff).

CLI Example:

.. code-block:: bash

    salt 'worker1.demo' brine_drift.highstate
    salt '*.demo' brine_drift.highstate test=True
    salt '*.demo' brine_drift.history limit=5
"""

import fcntl
import json
import os
import time

__virtualname__ = "brine_drift"

HISTORY = "/var/lib/brine/drift.jsonl"
#: While it exists, scheduled runs are skipped (salt://day2/paused.sls: cluster.upgrade).
PAUSED = "/var/lib/brine/drift.paused"
LOCK = "/var/lib/brine/drift.lock"
KEEP = 500


def __virtual__():
    return __virtualname__


def _short(text, limit=300):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summarise(ret, test):
    """(drifted, failed, count) from a highstate's return."""
    drifted, failed = [], []
    if not isinstance(ret, dict):
        return drifted, [{"id": "highstate", "state": "-", "comment": _short(ret)}], 0
    for key, result in ret.items():
        if not isinstance(result, dict):
            continue
        parts = key.split("_|-")
        entry = {"id": result.get("__id__", parts[1] if len(parts) > 1 else key),
                 "state": f"{parts[0]}.{parts[-1]}" if len(parts) > 3 else parts[0],
                 "comment": _short(result.get("comment"))}
        if result.get("result") is False:
            failed.append(entry)
        elif result.get("changes") or (test and result.get("result") is None):
            entry["changed"] = sorted(str(k) for k in (result.get("changes") or {}))
            drifted.append(entry)
    return drifted, failed, len(ret)


def highstate(test=False, min_gap=0):
    """
    Sync Brine's modules from the master, run this node's highstate and record
    what drifted (see the module's docstring). ``test=True`` reports drift without putting it back. Returns the
    record; the job fails when a state failed. ``min_gap`` (seconds; the
    schedule passes 60): skipped when the last run ended that recently - a
    minion of several masters starts a job once per master when asked to run
    it now, and one run is enough.

    CLI Example:

    .. code-block:: bash

        salt 'worker1.demo' brine_drift.highstate
    """
    test = bool(test) and str(test).lower() not in ("false", "0", "no")
    started = time.time()
    os.makedirs(os.path.dirname(HISTORY), mode=0o700, exist_ok=True)
    # One drift run at a time: a minion of several masters starts a scheduled job
    # once per master connection when asked to run it now (schedule.run_job).
    lock = open(LOCK, "w", encoding="utf-8")  # noqa: SIM115 - held until the run ends
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "test": test,
                "skipped": "another drift run is in progress", "drifted": [], "failed": []}
    try:
        if os.path.exists(PAUSED):
            with open(PAUSED, encoding="utf-8") as handle:
                why = _short(handle.read(), 200) or "paused"
            record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "test": test,
                      "skipped": f"drift correction paused: {why}", "drifted": [], "failed": []}
            _append(record)
            return record
        last = history(limit=1)
        if last and float(min_gap) > 0 and not last[-1].get("skipped") \
                and started - last[-1].get("ended", 0) < float(min_gap):
            return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), "test": test,
                    "skipped": f"the last run ended less than {min_gap} s ago", "drifted": [], "failed": []}
        return _highstate(test, started)
    finally:
        lock.close()


def _highstate(test, started):
    # Brine's modules as the master has them now (a deploy may have brought new ones).
    __salt__["saltutil.sync_all"]()
    ret = __salt__["state.highstate"](test=test)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    if isinstance(ret, list) and any("is running as PID" in str(item) for item in ret):
        # Another state run holds the node (a node_add, a removal, a renewal):
        # this round is skipped, the next interval runs.
        record = {"time": stamp, "test": test, "seconds": round(time.time() - started, 1), "states": 0,
                  "drifted": [], "failed": [], "skipped": _short(ret[0])}
        _append(record)
        return record
    drifted, failed, count = _summarise(ret, test)
    record = {"time": stamp, "test": test, "ended": round(time.time(), 1),
              "seconds": round(time.time() - started, 1), "states": count, "drifted": drifted, "failed": failed}
    _append(record)
    if failed:
        __context__["retcode"] = 1
    return record


def _append(record):
    os.makedirs(os.path.dirname(HISTORY), mode=0o700, exist_ok=True)
    lines = []
    if os.path.isfile(HISTORY):
        with open(HISTORY, encoding="utf-8") as handle:
            lines = handle.read().splitlines()[-(KEEP - 1):]
    lines.append(json.dumps(record, sort_keys=True))
    with open(HISTORY + ".tmp", "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(HISTORY + ".tmp", HISTORY)


def history(limit=50):
    """
    The last ``limit`` highstate records of this node, oldest first.

    CLI Example:

    .. code-block:: bash

        salt '*.demo' brine_drift.history limit=5
    """
    if not os.path.isfile(HISTORY):
        return []
    with open(HISTORY, encoding="utf-8") as handle:
        lines = [line for line in handle.read().splitlines() if line.strip()]
    return [json.loads(line) for line in lines[-int(limit):]]
