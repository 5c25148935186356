"""
The day-2 agent's plumbing, with nothing but the standard library: the payload
a cluster's masters run Brine from, which master acts on an onboarding, and
the cluster's job and drift records.

A cluster's own salt-master (on each of its masters) runs Brine from
``/srv/brine``, laid out as a checkout is::

    /srv/brine/product/     salt/, reactors/, _modules/, _states/, _utils/, _runners/,
                            _pillar/, _roster/, _output/, _grains/, VERSION,
                            ext/_modules -> ../_modules, ... (what minions sync)
    /srv/brine/pillar/      top.sls and clusters/<this cluster>/ only
    /srv/brine/state/       clusters/<this cluster>/: pki/, secrets/, jobs/
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import json
import os
import socket
import tarfile
import uuid
from typing import Any

#: What a cluster's masters need of a checkout (git-tracked layout).
PRODUCT_DIRS = ("salt", "reactors", "_modules", "_states", "_utils", "_runners", "_pillar", "_roster", "_output",
                "_grains")
#: Served to minions as salt://_modules etc., so ``saltutil.sync_all`` gives them Brine's modules.
MINION_EXTENSIONS = ("_modules", "_states", "_utils", "_grains")
PAYLOAD = os.path.join("brine-day2", "brine.tar.gz")
SKIPPED = ("__pycache__",)


def _payload_files(repo_root: str) -> list[tuple[str, str]]:
    """(path in the archive, path on disk) of every file of the product, sorted."""
    found = []
    for top in PRODUCT_DIRS:
        base = os.path.join(repo_root, top)
        for folder, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED)
            for name in sorted(names):
                if name.endswith((".pyc", ".tmp")):
                    continue
                path = os.path.join(folder, name)
                found.append((os.path.relpath(path, repo_root), path))
    top_sls = os.path.join(repo_root, "pillar", "top.sls")
    found.append(("pillar/top.sls", top_sls))
    return sorted(found)


def payload_bytes(repo_root: str, version: str) -> bytes:
    """
    The product as a gzipped tar, byte for byte the same for the same tree and
    version (sorted entries, no times, no owners), so a re-deploy ships nothing
    when nothing changed.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        def add(name: str, data: bytes | None = None, link: str | None = None, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
            info.mode = mode
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                archive.addfile(info)
            else:
                info.size = len(data or b"")
                archive.addfile(info, io.BytesIO(data or b""))

        for name, path in _payload_files(repo_root):
            with open(path, "rb") as handle:
                add(name, handle.read(), mode=0o755 if os.access(path, os.X_OK) else 0o644)
        add("VERSION", (version + "\n").encode())
        for extension in MINION_EXTENSIONS:
            add(f"ext/{extension}", link=f"../{extension}")
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6) as zipped:
        zipped.write(raw.getvalue())
    return packed.getvalue()


def write_payload(repo_root: str, fileserver: str, version: str) -> tuple[str, str, bool]:
    """Write the payload under ``fileserver`` (a salt:// root); return its path, sha256 and whether it changed."""
    data = payload_bytes(repo_root, version)
    path = os.path.join(fileserver, PAYLOAD)
    digest = hashlib.sha256(data).hexdigest()
    try:
        with open(path, "rb") as handle:
            if hashlib.sha256(handle.read()).hexdigest() == digest:
                return path, digest, False
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)
    return path, digest, True


def acting_master(masters: list[str], me: str, port: int = 4506, timeout: float = 1.0) -> str | None:
    """
    Which of a cluster's masters (addresses, inventory order) acts on an event
    every master receives: the first whose salt-master answers on ``port``.
    Each master asks this for itself and only the answer acts, so one
    onboarding starts one ``node_add``; when the first master is down, the
    next one takes over.
    """
    for address in masters:
        if address == me:
            return me
        try:
            with socket.create_connection((address, port), timeout=timeout):
                return address
        except OSError:
            continue
    return None


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class Job:
    """
    A cluster job: one run of an orchestrate on a cluster (``node_add`` ...), with
    an id, a state (queued, running, failed, done), start and end times and a
    log, in ``<state>/clusters/<cluster>/jobs/<id>/`` (``job.json``, ``log``).
    """

    def __init__(self, cluster_state: str, kind: str, subject: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.id = f"{stamp}-{kind}-{subject}-{uuid.uuid4().hex[:6]}"
        self.folder = os.path.join(cluster_state, "jobs", self.id)
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        self.record: dict[str, Any] = {"id": self.id, "kind": kind, "subject": subject, "state": "queued",
                                       "queued": now(), "started": None, "ended": None}
        self._save()

    def _save(self) -> None:
        with open(os.path.join(self.folder, "job.json.tmp"), "w", encoding="utf-8") as handle:
            json.dump(self.record, handle, indent=1)
        os.replace(os.path.join(self.folder, "job.json.tmp"), os.path.join(self.folder, "job.json"))

    def log(self, line: str) -> None:
        with open(os.path.join(self.folder, "log"), "a", encoding="utf-8") as handle:
            handle.write(f"{now()} {line}\n")

    def start(self) -> None:
        self.record.update(state="running", started=now())
        self._save()

    def end(self, ok: bool, summary: str) -> None:
        self.record.update(state="done" if ok else "failed", ended=now(), summary=summary)
        self._save()


def jobs(cluster_state: str) -> list[dict[str, Any]]:
    """Every job of a cluster, oldest first."""
    folder = os.path.join(cluster_state, "jobs")
    found = []
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        try:
            with open(os.path.join(folder, name, "job.json"), encoding="utf-8") as handle:
                found.append(json.load(handle))
        except (OSError, ValueError):
            continue
    return found


def append_event(cluster_state: str, log_name: str, record: dict[str, Any]) -> None:
    """One JSON line in ``<cluster state>/<log_name>.jsonl`` (onboarding decisions: accepted, refused)."""
    os.makedirs(cluster_state, mode=0o700, exist_ok=True)
    with open(os.path.join(cluster_state, f"{log_name}.jsonl"), "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"time": now(), **record}, sort_keys=True) + "\n")


def read_events(cluster_state: str, log_name: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(cluster_state, f"{log_name}.jsonl"), encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except OSError:
        return []


def drift_summary(history: dict[str, list[dict[str, Any]]]) -> list[str]:
    """
    ``cluster.drift``'s lines from every node's highstate history
    (``brine_drift.history``): per node and run that found drift, when, whether
    it restored or only reported, and each drifted state with what was done.
    """
    lines = []
    for node in sorted(history):
        runs = [run for run in history[node] if not run.get("skipped")]
        skipped = len(history[node]) - len(runs)
        drifted = [run for run in runs if run.get("drifted")]
        last = runs[-1]["time"] if runs else "never"
        lines.append(f"{node}: {len(runs)} highstate run(s), {len(drifted)} found drift; last run {last}"
                     + (f"; {skipped} skipped (another state run held the node)" if skipped else ""))
        for run in drifted:
            verb = "reported (test mode, not restored)" if run.get("test") else "restored"
            for state in run["drifted"]:
                lines.append(f"  {run['time']} {verb}: {state['id']} ({state['state']}): {state['comment']}")
        failed = [run for run in runs if run.get("failed")]
        for run in failed:
            for state in run["failed"]:
                lines.append(f"  {run['time']} FAILED: {state['id']} ({state['state']}): {state['comment']}")
    return lines
