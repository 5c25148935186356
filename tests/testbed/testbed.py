"""Bring a cluster's nodes up as systemd-nspawn containers on this machine, and down again."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from . import network
from .rootfs import ensure_rootfs
from .spec import (
    BUNDLE_DROP,
    CGROUP_DIR,
    STATE_ROOT,
    ClusterSpec,
    NodeSpec,
    bridge_name,
    load_spec,
    lock_path,
    netns_name,
    netns_prefix,
    state_dir,
    veth_name,
)
from .system import (
    POWEROFF,
    TestbedError,
    cgroup_hierarchies,
    cgroup_pids,
    cluster_cgroups,
    container_init,
    kill_cgroups,
    make_cgroup,
    node_cgroups,
    pid_namespace_strays,
    remove_cgroups,
    remove_tree,
    sh,
    signal_pids,
    unmount_all,
)

NODE_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb")
BOOT_TIMEOUT = 120.0
STALL_GRACE = 10.0
STOP_GRACE = 10.0
NSPAWN_PROPAGATE = Path("/run/systemd/nspawn/propagate")
#: Kernel-wide sysctls kubelet insists on (it writes them when they differ, and fails when it
#: cannot). A node sees these values through files bound over the entries in its own mount
#: namespace; the machine's kernel keeps its own values.
KUBELET_SYSCTLS = {"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10",
                   "kernel/panic_on_oops": "1"}  # fmt: skip
SYSCTL_FILES = "usr/lib/brine-testbed/sysctl"
#: Run in each node's mount namespace once its PID 1 exists: what a real machine gives
#: kubelet and nspawn does not.
NODE_PLUMBING = r"""
set -e
# nspawn makes /proc/sys/net writable only with --private-network, not with
# --network-namespace-path: give the node its own namespace's net.* back.
grep -q ' /proc/sys/net ' /proc/1/mountinfo ||
    { mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net; }
# kubelet's kernel-wide settings: the node reads the values kubelet wants (files bound over
# the entries here only); the machine's own values are untouched.
for file in /SYSCTL_FILES/*; do
    entry=/proc/sys/$(basename "$file" | tr . /)
    grep -q " $entry " /proc/1/mountinfo || mount --bind -o ro "$file" "$entry"
done
# nspawn mounts the cgroup v1 controllers read-only; kubelet and systemd create the pods'
# cgroups (below the node's own cgroup) in each of them.
for controller in /sys/fs/cgroup/*; do
    [ -d "$controller" ] && [ ! -L "$controller" ] || continue
    case $controller in /sys/fs/cgroup/unified|/sys/fs/cgroup/systemd) continue ;; esac
    if awk -v m="$controller" '$5 == m && $6 ~ /(^|,)ro(,|$)/ { found = 1 } END { exit !found }' /proc/1/mountinfo; then
        mount -o remount,bind,rw,nosuid,nodev,noexec "$controller"
    fi
done
""".replace("SYSCTL_FILES", SYSCTL_FILES)

Log = Callable[[str], None]


@contextmanager
def _cluster_lock(cluster: str) -> Iterator[None]:
    lock_path(cluster).parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path(cluster), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return "(no log)"


def _node_pid1(cluster: str, node: str) -> int | None:
    return container_init(cgroup_pids(node_cgroups(cluster, node)))


def _nsenter(pid1: int) -> list[str]:
    """The command prefix that runs a program inside a node, with a clean environment."""
    return ["nsenter", "--all", f"--target={pid1}", "--", "env", "-i", *NODE_ENV]


def _power_off(cluster: str, node: str) -> None:
    """Ask the node's systemd to power off, after killing what was run in it with nsenter
    (its shutdown would wait for those)."""
    members = cgroup_pids(node_cgroups(cluster, node))
    pid1 = container_init(members)
    if pid1 is not None:
        signal_pids(pid_namespace_strays(pid1, members), signal.SIGKILL)
        signal_pids([pid1], POWEROFF)


def down_cluster(cluster: str) -> bool:
    """Remove everything of ``cluster`` the testbed made, with or without its pillar or
    state file (under the cluster's lock). Returns whether there was anything to remove."""
    with _cluster_lock(cluster):
        return _teardown(cluster)


def _teardown(cluster: str) -> bool:
    """Remove everything of ``cluster`` the testbed made; found by name, not by state file.

    Powers every node off through its PID 1, kills what is left after a grace period,
    then removes mounts, network namespaces, interfaces, cgroups and the state dir.
    Returns whether there was anything to remove.
    """
    cgroups = cluster_cgroups(cluster)
    directory = state_dir(cluster)
    found = bool(
        cgroup_pids(cgroups)
        or any(path.exists() for path in cgroups)
        or directory.exists()
        or network.cluster_netns(cluster)
        or network.cluster_links(cluster)
    )
    if not found:
        return False
    nodes = {child.name for path in cgroups if path.is_dir() for child in path.iterdir() if child.is_dir()}
    deadline = time.monotonic() + STOP_GRACE
    while cgroup_pids(cgroups) and time.monotonic() < deadline:
        # Again each second: a PID 1 that is not yet systemd, or a systemd that has not
        # yet set up its signal handlers, ignores the signal.
        for node in nodes:
            _power_off(cluster, node)
        settle = min(deadline, time.monotonic() + 1)
        while cgroup_pids(cgroups) and time.monotonic() < settle:
            time.sleep(0.05)
    kill_cgroups(cgroups)
    unmount_all(directory)
    network.remove_network(cluster)
    for machine in NSPAWN_PROPAGATE.glob(f"{netns_prefix(cluster)}*"):
        remove_tree(machine)
    stayed = remove_cgroups(cgroups)
    for path in cgroups:
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # brine-testbed/, once no cluster is left in it
    remove_tree(directory)
    if stayed:
        raise TestbedError(f"cgroups could not be removed: {', '.join(map(str, stayed))}")
    return True


#: Every node's systemd, containerd and kubelet take inotify instances from this machine's
#: one per-user limit (root's; 128 by default): a few real clusters exhaust it and new
#: nodes come up "degraded" (units fail with "Too many open files").
HOST_INOTIFY_INSTANCES = 8192


def _raise_host_inotify_limit(log: Log) -> None:
    path = Path("/proc/sys/fs/inotify/max_user_instances")
    current = int(path.read_text())
    if current < HOST_INOTIFY_INSTANCES:
        path.write_text(str(HOST_INOTIFY_INSTANCES))
        log(f"fs.inotify.max_user_instances on this machine: {current} -> {HOST_INOTIFY_INSTANCES} (testbed nodes share it)")


def known_clusters() -> list[str]:
    """Clusters with anything left on this machine: state dirs, cgroups or network namespaces."""
    names = set()
    if STATE_ROOT.is_dir():
        names.update(entry.name for entry in STATE_ROOT.iterdir() if entry.is_dir())
    for hierarchy in cgroup_hierarchies():
        top = hierarchy / CGROUP_DIR
        if top.is_dir():
            names.update(entry.name for entry in top.iterdir() if entry.is_dir())
    if network.NETNS_DIR.is_dir():
        names.update(
            entry.name[4:].split(".", 1)[0]
            for entry in network.NETNS_DIR.iterdir()
            if entry.name.startswith("brt-") and "." in entry.name
        )
    return sorted(names)


class Testbed:
    """One cluster of the pillar, as systemd-booted containers on this machine.

    ``pillar_dir`` defaults to ``<repo_root>/pillar/clusters/<cluster>``; ``spec`` may be
    given instead of a pillar.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        cluster: str,
        repo_root: str | os.PathLike = ".",
        *,
        pillar_dir: str | os.PathLike | None = None,
        spec: ClusterSpec | None = None,
        log: Log = print,
    ) -> None:
        self.repo_root = Path(repo_root).resolve()
        pillar = Path(pillar_dir) if pillar_dir else self.repo_root / "pillar" / "clusters" / cluster
        self.spec = spec or load_spec(cluster, pillar, self.repo_root)
        self.cluster = self.spec.name
        self.log = log
        self.state_dir = state_dir(self.cluster)
        self.state_file = self.state_dir / "state.json"
        self.known_hosts_path = self.state_dir / "known_hosts"
        self.host_keys_file = self.known_hosts_path
        self.ssh_config_path = self.state_dir / "ssh_config"
        self.ssh_key_path = self.spec.private_key
        self.jump_host = self.spec.jump_host
        self.jump_address = self.spec.node(self.jump_host).address
        self.deploy_address = self.spec.deploy_address
        self.rootfs_build_seconds: float | None = None

    @property
    def nodes(self) -> list[dict[str, object]]:
        """The inventory's nodes: name, address, roles."""
        return [node.as_dict() for node in self.spec.nodes]

    def address(self, node: str) -> str:
        """The address of node ``node``."""
        return self.spec.node(node).address

    # --- up -----------------------------------------------------------------------------

    def up(self) -> None:
        """Start the cluster (a no-op when it is already up and healthy)."""
        started = time.monotonic()
        with _cluster_lock(self.cluster):
            if self._healthy():
                self.log(f"cluster {self.cluster}: already up")
                return
            if _teardown(self.cluster):
                self.log(f"cluster {self.cluster}: removed leftovers of an earlier run")
            _raise_host_inotify_limit(self.log)
            rootfs, self.rootfs_build_seconds = ensure_rootfs(self.log)
            if self.rootfs_build_seconds is None:
                self.log(f"rootfs: cached {rootfs}")
            client_key = self._ensure_client_key()
            self.state_dir.mkdir(parents=True)
            layers = self.state_dir / "layers"
            layers.mkdir(mode=0o700)
            # Each node's writable layer: a tmpfs by default (fast; the kernel's default
            # size, half the RAM, shared by the cluster's nodes: about ten real Kubernetes
            # nodes). BRINE_TESTBED_LAYERS=disk keeps them on the host's disk instead,
            # for larger clusters (the bench's 3+12).
            if os.environ.get("BRINE_TESTBED_LAYERS", "tmpfs") != "disk":
                sh(["mount", "-t", "tmpfs", "-o", "mode=0700", f"brine-testbed-{self.cluster}", layers])
            host_keys = {node.name: self._prepare_node(node, rootfs, layers, client_key) for node in self.spec.machines}
            known_hosts = "".join(f"{self.spec.node(name).address} {key}\n" for name, key in host_keys.items())
            for node in self.spec.machines:
                peers = "".join(f"{peer.address},{peer.name} {host_keys[peer.name]}\n" for peer in self.spec.machines)
                (self._root(node) / "etc/ssh/ssh_known_hosts").write_text(peers)
            bridge = network.create_bridge(self.spec)
            links = {
                node.name: network.create_node_network(self.spec, node, self._node_dir(node) / "nftables.conf")
                for node in self.spec.machines
            }
            boot_started = time.monotonic()
            launched = {node.name: self._launch(node) for node in self.spec.machines}
            with ThreadPoolExecutor(max_workers=len(self.spec.machines)) as pool:
                ready = dict(zip(launched, pool.map(self._wait_ready, self.spec.machines, launched.values()), strict=True))
            self.known_hosts_path.write_text(known_hosts)
            self._write_ssh_config()
            self._write_state(bridge, links, launched, ready)
        for node in self.spec.machines:
            pid1, state, seconds = ready[node.name]
            self.log(
                f"{node.name:<12} {node.address:<15} {','.join(node.roles):<14} pid1={pid1:<8} {state} after {seconds:.1f} s"
            )
        self.log(
            f"cluster {self.cluster}: {len(self.spec.machines)} nodes up in {time.monotonic() - started:.1f} s "
            f"(boot {time.monotonic() - boot_started:.1f} s); ssh -F {self.ssh_config_path} {self.jump_host}"
        )

    def _healthy(self) -> bool:
        """Whether the cluster is up as the pillar describes it, for this client key (a
        testbed made from another checkout authorised another key), every node booted (a
        failed unit, "degraded", still counts: what runs on the nodes is not the testbed's
        business)."""
        try:
            state = json.loads(self.state_file.read_text())
            recorded = state["nodes"]
        except (OSError, ValueError, KeyError):
            return False
        if state.get("ssh_key") != str(self.ssh_key_path):
            return False
        wanted = [{"name": node.name, "address": node.address} for node in self.spec.machines]
        if [{"name": node["name"], "address": node["address"]} for node in recorded] != wanted:
            return False
        return all(self._system_state(node.name) in ("running", "degraded") for node in self.spec.machines)

    def _ensure_client_key(self) -> str:
        key = self.ssh_key_path
        public = key.with_name(key.name + ".pub")
        if not key.exists():
            key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            temporary = key.with_name(f".{key.name}.{os.getpid()}")
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "brine-testbed", "-f", temporary])
            os.replace(temporary.with_name(temporary.name + ".pub"), public)
            os.replace(temporary, key)
            self.log(f"ssh: made client key {key}")
        elif not public.exists():
            public.write_text(sh(["ssh-keygen", "-y", "-f", key]).stdout)
        key.chmod(0o600)
        return public.read_text().strip()

    def _node_dir(self, node: NodeSpec) -> Path:
        return self.state_dir / node.name

    def _root(self, node: NodeSpec) -> Path:
        return self._node_dir(node) / "root"

    def _prepare_node(self, node: NodeSpec, rootfs: Path, layers: Path, client_key: str) -> str:
        """Mount the node's overlay and give it its identity; return its SSH host key."""
        root = self._root(node)
        upper, work = layers / node.name / "upper", layers / node.name / "work"
        for directory in (root, upper, work):
            directory.mkdir(parents=True)
        sh(
            [
                "mount",
                "-t",
                "overlay",
                f"brine-testbed-{self.cluster}-{node.name}",
                "-o",
                f"lowerdir={rootfs},upperdir={upper},workdir={work}",
                root,
            ]
        )
        (root / "etc/hostname").write_text(f"{node.name}\n")
        (root / "etc/machine-id").write_text(f"{uuid.uuid4().hex}\n")
        hosts = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
        hosts += [f"{other.address}\t{other.name}" for other in self.spec.machines]
        (root / "etc/hosts").write_text("\n".join(hosts) + "\n")
        sysctls = root / SYSCTL_FILES
        sysctls.mkdir(parents=True)
        for key, value in KUBELET_SYSCTLS.items():
            (sysctls / key.replace("/", ".")).write_text(value + "\n")
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(client_key + "\n")
        (ssh_dir / "authorized_keys").chmod(0o600)
        ruleset = network.firewall(self.spec, node)
        (self._node_dir(node) / "nftables.conf").write_text(ruleset)
        (root / "etc/nftables.conf").write_text(ruleset)
        host_key = root / "etc/ssh/ssh_host_ed25519_key"
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", host_key])
        key_type, key_data = host_key.with_name(host_key.name + ".pub").read_text().split()[:2]
        return f"{key_type} {key_data}"

    def _launch(self, node: NodeSpec) -> int:
        """Start the node's systemd-nspawn, detached, in its own cgroups; return its pid."""
        cgroups = node_cgroups(self.cluster, node.name)
        for path in cgroups:
            make_cgroup(path)
        pid_file = self._node_dir(node) / "nspawn.pid"
        nspawn = [
            "systemd-nspawn",
            "--boot",
            "--quiet",
            f"--directory={self._root(node)}",
            f"--machine={netns_name(self.cluster, node.name)}",
            f"--hostname={node.name}",
            f"--network-namespace-path={network.NETNS_DIR / netns_name(self.cluster, node.name)}",
            "--register=no",
            "--keep-unit",
            "--private-users=no",
            "--capability=all",
            "--resolv-conf=off",
            "--link-journal=no",
            "--timezone=off",
            "--console=read-only",
            "--bind=/dev/kmsg",  # kubelet reads it
            "--system-call-filter=@keyring",  # runc joins a session keyring for each container
        ]
        if node.name == self.spec.deploy.name:
            BUNDLE_DROP.mkdir(parents=True, exist_ok=True)
            nspawn.append(f"--bind-ro={BUNDLE_DROP}:/srv/brine/incoming")
        else:
            # containerd's overlayfs snapshots cannot live on the node's own overlay root.
            containerd_state = self._node_dir(node) / "containerd"
            containerd_state.mkdir(exist_ok=True)
            nspawn.append(f"--bind={containerd_state}:/var/lib/containerd")
        joins = "; ".join(f"echo $$ > {shlex.quote(str(path / 'cgroup.procs'))}" for path in cgroups)
        script = f"set -e; {joins}; echo $$ > {shlex.quote(str(pid_file))}; exec {shlex.join(nspawn)}"
        with open(self._node_dir(node) / "console.log", "ab") as console:
            subprocess.run(
                ["setsid", "--fork", "sh", "-c", script], stdin=subprocess.DEVNULL, stdout=console, stderr=console, check=True
            )
        deadline = time.monotonic() + 10
        while not pid_file.exists() or not pid_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TestbedError(f"{node.name}: nspawn did not start:\n{_tail(self._node_dir(node) / 'console.log')}")
            time.sleep(0.01)
        return int(pid_file.read_text())

    def _wait_ready(self, node: NodeSpec, nspawn_pid: int) -> tuple[int, str, float]:
        """Wait for the node's boot to finish and sshd to answer; return (pid1, state, seconds)."""
        started = time.monotonic()
        deadline = started + BOOT_TIMEOUT
        console = self._node_dir(node) / "console.log"

        def check_alive(what: str) -> None:
            if not Path(f"/proc/{nspawn_pid}").exists():
                raise TestbedError(f"{node.name}: nspawn exited while waiting for {what}:\n{_tail(console)}")
            if time.monotonic() > deadline:
                raise TestbedError(f"{node.name}: no {what} after {BOOT_TIMEOUT:.0f} s:\n{_tail(console)}")

        while (pid1 := _node_pid1(self.cluster, node.name)) is None:
            check_alive("PID 1")
            time.sleep(0.02)
        stalled_since: float | None = None
        nudges = 0
        while True:
            proc = sh([*_nsenter(pid1), "systemctl", "is-system-running"], check=False, timeout=30)
            state = proc.stdout.strip()
            if state in ("running", "degraded"):
                break
            check_alive(f"finished boot (is-system-running: {state or proc.stderr.strip()})")
            # systemd 252 here sometimes stops dispatching its boot jobs (seen on a loaded
            # machine with many nodes: every job "waiting", none running, PID 1 idle in
            # epoll). A daemon-reload sets it going again; say so when it is needed.
            jobs = sh([*_nsenter(pid1), "systemctl", "list-jobs", "--no-legend", "--plain"], check=False,
                      timeout=30).stdout.splitlines()
            stalled = bool(jobs) and all(line.split()[-1] == "waiting" for line in jobs if line.split())
            stalled_since = (stalled_since or time.monotonic()) if stalled else None
            if stalled_since is not None and time.monotonic() - stalled_since > STALL_GRACE and nudges < 3:
                nudges += 1
                self.log(f"{node.name}: boot stalled with {len(jobs)} jobs waiting and none running; daemon-reload")
                sh([*_nsenter(pid1), "systemctl", "daemon-reload"], check=False, timeout=30)
                stalled_since = None
            time.sleep(0.2)
        # Once booted (its /proc mounted): what a real machine gives kubelet and nspawn does not.
        plumbing = NODE_PLUMBING if node.name != self.spec.deploy.name else NODE_PLUMBING.split("# kubelet's")[0]
        sh(["nsenter", f"--target={pid1}", "--mount", "--", "sh", "-c", plumbing], timeout=30)
        if state == "degraded":
            failed = sh([*_nsenter(pid1), "systemctl", "--failed", "--plain", "--no-legend"], check=False).stdout
            self.log(f"{node.name}: degraded; failed units:\n{failed.rstrip()}")
        banner = "exec 3<>/dev/tcp/127.0.0.1/22 && head -c 8 <&3"
        while True:
            proc = sh(
                [
                    "nsenter",
                    f"--net={network.NETNS_DIR / netns_name(self.cluster, node.name)}",
                    "timeout",
                    "3",
                    "bash",
                    "-c",
                    banner,
                ],
                check=False,
            )
            if proc.stdout.startswith("SSH-2.0-"):
                break
            check_alive("SSH banner on port 22")
            time.sleep(0.1)
        return pid1, state, time.monotonic() - started

    def _write_ssh_config(self) -> None:
        common = [
            f"User {self.spec.ssh_user}",
            f"IdentityFile {self.ssh_key_path}",
            "IdentitiesOnly yes",
            f"UserKnownHostsFile {self.known_hosts_path}",
            "GlobalKnownHostsFile /dev/null",
            "StrictHostKeyChecking yes",
            "UpdateHostKeys no",
            "BatchMode yes",
            "ConnectTimeout 3",
        ]
        lines = [f"# Brine testbed, cluster {self.cluster}: ssh -F {self.ssh_config_path} <node>"]
        for node in self.spec.machines:
            lines.append(f"Host {node.name} {node.address}")
            lines.append(f"  HostName {node.address}")
            if node.name not in (self.jump_host, self.spec.deploy.name):
                lines.append(f"  ProxyJump {self.jump_host}")
            lines += [f"  {option}" for option in common]
        self.ssh_config_path.write_text("\n".join(lines) + "\n")

    def _write_state(
        self, bridge: str, links: dict[str, tuple[str, str]], launched: dict[str, int], ready: dict[str, tuple[int, str, float]]
    ) -> None:
        state = {
            "cluster": self.cluster,
            "bridge": bridge,
            "deploy_address": f"{self.deploy_address}/{self.spec.prefixlen}",
            "host_address": f"{self.spec.host_address}/{self.spec.prefixlen}",
            "jump_host": self.jump_host,
            "known_hosts": str(self.known_hosts_path),
            "ssh_config": str(self.ssh_config_path),
            "ssh_key": str(self.ssh_key_path),
            "nodes": [
                {
                    **node.as_dict(),
                    "netns": links[node.name][0],
                    "veth": links[node.name][1],
                    "nspawn_pid": launched[node.name],
                    "pid1": ready[node.name][0],
                    "root": str(self._root(node)),
                    "console_log": str(self._node_dir(node) / "console.log"),
                    "cgroups": [str(path) for path in node_cgroups(self.cluster, node.name)],
                }
                for node in self.spec.machines
            ],
        }
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(temporary, self.state_file)

    # --- running ------------------------------------------------------------------------

    def pid1(self, node: str) -> int:
        """The host pid of ``node``'s PID 1 (its systemd)."""
        self.spec.node(node)
        pid1 = _node_pid1(self.cluster, node)
        if pid1 is None:
            raise TestbedError(f"node {node} of cluster {self.cluster} is not running")
        return pid1

    def run(
        self, node: str, command: str, *, check: bool = False, timeout: float | None = 60, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` with ``/bin/sh -c`` inside ``node`` (all of its PID 1's namespaces)."""
        proc = subprocess.run(
            [*_nsenter(self.pid1(node)), "/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise TestbedError(f"{node}: {command}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def _system_state(self, node: str) -> str:
        pid1 = _node_pid1(self.cluster, node)
        if pid1 is None:
            return "down"
        proc = sh([*_nsenter(pid1), "systemctl", "is-system-running"], check=False, timeout=10)
        return proc.stdout.strip() or "unknown"

    def ssh_argv(self, node: str, *command: str) -> list[str]:
        """An ssh command line reaching ``node`` as the deploy side does (through the jump host)."""
        return ["ssh", "-F", str(self.ssh_config_path), node, *command]

    def status(self) -> list[dict[str, object]]:
        """Each node with its PID 1 (or None) and ``systemctl is-system-running`` (or "down")."""
        return [
            {**node.as_dict(), "pid1": _node_pid1(self.cluster, node.name), "state": self._system_state(node.name)}
            for node in self.spec.machines
        ]

    def attach(self, node: str, other: Testbed, host_number: int) -> str:
        """Put ``node`` on ``other``'s network as well (a second interface, address
        ``<other's network>.<host_number>``), as a machine room routes a control cluster's
        masters to every other cluster's reachable servers; ``other``'s firewalls still
        take SSH from outside their cluster only on the jump host and the deploy node.
        Gone when either cluster goes down. Returns the address."""
        address = str(other.spec.network.network_address + host_number)
        added = network.attach_node(netns_name(self.cluster, node), bridge_name(other.cluster),
                                    veth_name(other.cluster, host_number), address, other.spec.prefixlen)
        self.log(f"{self.cluster}/{node}: {'on' if added else 'already on'} {other.cluster}'s network as {address}")
        return address

    # --- down ---------------------------------------------------------------------------

    def down(self) -> None:
        """Stop every node and remove all the cluster left on the host (idempotent)."""
        started = time.monotonic()
        removed = down_cluster(self.cluster)
        what = "down" if removed else "was not up"
        self.log(f"cluster {self.cluster}: {what} in {time.monotonic() - started:.1f} s")
