"""
A private Salt configuration for a test: Brine's etc/salt/master with its own
pillar folder and state directory, so a test can declare clusters (good or
broken) and run the real salt-run / salt-ssh against them without touching the
checkout's own .brine/ or pillar/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


class SaltEnv:
    """salt-run and salt-ssh over a copy of pillar/ under ``root``."""

    def __init__(self, root: str, pillar_from: str | None = None) -> None:
        self.root = root
        self.runs = 0
        self.pillar = os.path.join(root, "pillar")
        self.state = os.path.join(root, "state")
        self.config_dir = os.path.join(root, "etc")
        shutil.copytree(pillar_from or os.path.join(REPO_ROOT, "pillar"), self.pillar, dirs_exist_ok=True)
        os.makedirs(os.path.join(self.config_dir, "master.d"), exist_ok=True)
        os.makedirs(os.path.join(self.state, "salt", "var", "cache", "salt", "master", "proc"), exist_ok=True)
        shutil.copy(os.path.join(REPO_ROOT, "etc", "salt", "master"), self.config_dir)
        paths = {
            "user": os.environ.get("USER") or "root",
            "root_dir": os.path.join(self.state, "salt"),
            "brine_state_dir": self.state,
            "brine_repo_root": REPO_ROOT,
            "module_dirs": [REPO_ROOT],
            "pillar_dirs": [os.path.join(REPO_ROOT, "_pillar")],
            "file_roots": {"base": [os.path.join(REPO_ROOT, "salt"), os.path.join(self.state, "fileserver")]},
            "pillar_roots": {"base": [self.pillar]},
            "ssh_log_file": os.path.join(self.state, "salt-ssh.log"),
        }
        with open(os.path.join(self.config_dir, "master.d", "paths.conf"), "w", encoding="utf-8") as handle:
            yaml.safe_dump(paths, handle)

    def cluster_file(self, cluster: str, name: str) -> str:
        return os.path.join(self.pillar, "clusters", cluster, name)

    def edit(self, cluster: str, name: str, change) -> None:
        """Load a cluster's pillar file, let ``change`` edit the data, write it back."""
        path = self.cluster_file(cluster, name)
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
        change(data)
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump(data, handle)

    def known_hosts(self, cluster: str) -> str:
        return os.path.join(self.state, "clusters", cluster, "known_hosts")

    def ssh_config(self, cluster: str) -> str:
        return os.path.join(self.state, "clusters", cluster, "ssh_config")

    def _run(self, tool: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [os.path.join(BIN, tool), "-c", self.config_dir, *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def salt_run(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return self._run("salt-run", *args, timeout=timeout)

    def salt_ssh(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return self._run("salt-ssh", *args, timeout=timeout)

    def deploy(self, cluster: str, timeout: int = 3600, until: str | None = None) -> subprocess.CompletedProcess:
        """``salt-run state.orchestrate cluster.deploy``; ``until``: the last step to run (e.g. "etcd")."""
        pillar = {"cluster": cluster, **({"until": until} if until else {})}
        return self.salt_run("state.orchestrate", "cluster.deploy", f"pillar={json.dumps(pillar)}", timeout=timeout)

    def orchestrate(self, sls: str, pillar: dict, timeout: int = 3600) -> tuple[int, dict[str, dict], str]:
        """Run an orchestrate with ``--out=json``; return its exit code, each step's result by
        state id, and its output. Raises AssertionError when it printed no result."""
        proc = self.salt_run("state.orchestrate", sls, f"pillar={json.dumps(pillar)}", "--out=json", timeout=timeout)
        self.runs += 1
        stem = os.path.join(self.root, f"orchestrate-{self.runs:02d}-{sls}")
        for suffix, text in ((".out", proc.stdout), (".err", proc.stderr)):
            with open(stem + suffix, "w", encoding="utf-8") as handle:
                handle.write(text)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"{sls}: no JSON result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}") from None
        steps = {}
        for host in (data.get("data") or {}).values():
            if isinstance(host, dict):
                steps.update({s["__id__"]: s for s in host.values() if isinstance(s, dict) and "__id__" in s})
        return proc.returncode, steps, proc.stdout


def _per_machine(step: dict) -> dict:
    """An orchestrate step's changes, per machine when the step applied states
    (salt.state and brine_cluster.applied nest them as ``{"out": "highstate", "ret": {machine: states}}``)."""
    changes = step.get("changes") or {}
    if isinstance(changes, dict) and changes.get("out") == "highstate" and isinstance(changes.get("ret"), dict):
        return changes["ret"]
    return changes


def changes_of(step: dict) -> int:
    """How many states changed under an orchestrate step (nested salt.state results included)."""
    changes = _per_machine(step)
    nested = [v for v in changes.values() if isinstance(v, dict)]
    counted = sum(1 for minion in nested for state in minion.values()
                  if isinstance(state, dict) and state.get("changes"))
    return counted or (1 if changes and not nested else 0)


def changed_states(step: dict) -> list[str]:
    """``minion: state id`` of every state that changed under an orchestrate step."""
    changes = _per_machine(step)
    found = []
    for minion, states in changes.items():
        if isinstance(states, dict):
            found += [f"{minion}: {key.split('_|-')[1] if '_|-' in key else key}" for key, state in states.items()
                      if isinstance(state, dict) and state.get("changes")]
    return found


def failures(steps: dict[str, dict]) -> dict[str, str]:
    """Each failed orchestrate step with what failed under it (nested states' comments)."""
    found = {}
    for sid, step in steps.items():
        if step.get("result") is True:
            continue
        lines = [step.get("comment", "")]
        for minion, states in _per_machine(step).items():
            if isinstance(states, dict):
                lines += [f"{minion}: {key.split('_|-')[1] if '_|-' in key else key}: {state.get('comment', '')}"
                          for key, state in states.items() if isinstance(state, dict) and state.get("result") is False
                          and "requisite failed" not in str(state.get("comment", ""))]
        found[sid] = "\n".join(lines)[-4000:]
    return found


def step_table(steps: dict[str, dict]) -> str:
    """``<step> <seconds>, ...`` of an orchestrate's steps in the order they ran."""
    rows = sorted(steps.values(), key=lambda s: s["__run_num__"])
    return ", ".join(f"{s['__id__'].removeprefix('cluster-')} {s['duration'] / 1000:.1f}" for s in rows)
