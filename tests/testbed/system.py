"""Host plumbing: commands, mounts, cgroups and processes."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .spec import CGROUP_DIR, CGROUP_ROOT


class TestbedError(RuntimeError):
    """A testbed operation failed."""

    __test__ = False  # not a pytest test class


def sh(
    argv: Sequence[str | os.PathLike], *, check: bool = True, timeout: float | None = 60, pass_fds: Sequence[int] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture its output; raise TestbedError if it fails and ``check``."""
    args = [str(arg) for arg in argv]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, pass_fds=pass_fds)
    except FileNotFoundError as exc:
        raise TestbedError(
            f"{args[0]}: command not found (the testbed needs debootstrap, systemd-container, iproute2, nftables, openssh-client)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"{' '.join(args)}: timed out after {timeout} s") from exc
    if check and proc.returncode != 0:
        raise TestbedError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


# --- mounts -----------------------------------------------------------------------------


def _unescape_mount_path(field: str) -> str:
    """Undo mountinfo's octal escapes (``\\040`` for a space)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path``, deepest first."""
    prefix = str(path).rstrip("/")
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = _unescape_mount_path(line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(path: Path) -> None:
    """Unmount everything at or below ``path``, lazily where a mount is busy."""
    for _ in range(5):  # a mount point can be mounted over several times
        points = mounts_under(path)
        if not points:
            return
        for point in points:
            if sh(["umount", point], check=False).returncode != 0:
                sh(["umount", "--lazy", point], check=False)
    if mounts_under(path):
        raise TestbedError(f"cannot unmount {', '.join(map(str, mounts_under(path)))}")


def remove_tree(path: Path) -> None:
    """``rm -rf`` that never crosses into another file system (mounts are skipped, not emptied)."""
    if path.exists() or path.is_symlink():
        sh(["rm", "-rf", "--one-file-system", "--", path], timeout=300)


# --- cgroups ----------------------------------------------------------------------------


def cgroup_hierarchies() -> list[Path]:
    """Every mounted cgroup hierarchy under /sys/fs/cgroup (v1 controllers, named, unified)."""
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            point = Path(_unescape_mount_path(fields[4]))
            if fstype in ("cgroup", "cgroup2") and point.parent == CGROUP_ROOT:
                found.append(point)
    if not found and (CGROUP_ROOT / "cgroup.procs").exists():
        found.append(CGROUP_ROOT)  # a pure cgroup v2 host
    return sorted(found)


def cluster_cgroups(cluster: str) -> list[Path]:
    """The cluster's cgroup directory in every hierarchy (existing or not)."""
    return [hierarchy / CGROUP_DIR / cluster for hierarchy in cgroup_hierarchies()]


def node_cgroups(cluster: str, node: str) -> list[Path]:
    """The node's cgroup directory in every hierarchy (existing or not)."""
    return [path / node for path in cluster_cgroups(cluster)]


def make_cgroup(path: Path) -> None:
    """Create ``path`` and its parents; cpuset levels get their parent's cpus and mems."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir()
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (directory / knob).exists():
                (directory / knob).write_text((directory.parent / knob).read_text())


def cgroup_pids(paths: Iterable[Path]) -> set[int]:
    """Every process in the cgroups ``paths`` and their descendants."""
    pids: set[int] = set()
    for top in paths:
        if not top.is_dir():
            continue
        for directory, _subdirs, _files in os.walk(top):
            try:
                text = Path(directory, "cgroup.procs").read_text()
            except OSError:
                continue
            pids.update(int(pid) for pid in text.split())
    return pids


def remove_cgroups(paths: Iterable[Path]) -> list[Path]:
    """Remove the cgroup trees ``paths`` bottom-up; return the directories that stayed."""
    stayed = []
    for top in paths:
        if not top.is_dir():
            continue
        for directory, _subdirs, _files in os.walk(top, topdown=False):
            for attempt in range(50):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:  # EBUSY while dying tasks leave
                    if attempt == 49:
                        stayed.append(Path(directory))
                    time.sleep(0.1)
    return stayed


# --- processes --------------------------------------------------------------------------


def _nspid(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return line.split()[1:]
    except OSError:
        pass
    return []


_OWN_PID_DEPTH = len(_nspid(os.getpid())) or 1


def container_init(pids: Iterable[int]) -> int | None:
    """Among ``pids``, the one that is PID 1 of a PID namespace one level below ours."""
    for pid in sorted(pids):
        nspid = _nspid(pid)
        if len(nspid) == _OWN_PID_DEPTH + 1 and nspid[-1] == "1":
            return pid
    return None


def pid_namespace_strays(pid1: int, cgroup_members: set[int]) -> set[int]:
    """Processes in ``pid1``'s PID namespace that are not in its cgroups: commands entered
    with nsenter, which the node's systemd neither tracks nor stops (its shutdown waits
    for them)."""
    try:
        namespace = os.readlink(f"/proc/{pid1}/ns/pid")
    except OSError:
        return set()
    strays = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) not in cgroup_members:
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") == namespace:
                    strays.add(int(entry.name))
            except OSError:
                continue
    return strays


def signal_pids(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to every pid that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_cgroups(paths: Sequence[Path]) -> None:
    """SIGKILL every process in the cgroups ``paths`` until they are empty."""
    deadline = time.monotonic() + 10
    while pids := cgroup_pids(paths):
        if time.monotonic() > deadline:
            raise TestbedError(f"processes {sorted(pids)} survive SIGKILL in {', '.join(map(str, paths))}")
        signal_pids(pids, signal.SIGKILL)
        time.sleep(0.1)


POWEROFF = signal.SIGRTMIN + 4
"""systemd as PID 1 powers off on SIGRTMIN+4."""
