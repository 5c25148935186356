"""
Preflight: what a node must offer before Brine changes anything on it, checked
read-only, every failure collected so that a user fixes them all in one pass.

- :data:`REQUIREMENTS` - CPUs, memory, free disk and ports per role: the one
  place these numbers live (the execution module ``brine_preflight`` and the
  runner ``cluster.preflight`` both read it);
- :func:`node_checks` - the checks on one node, from its /proc, /sys and /etc
  (every reader takes its paths, so tests use fake trees);
- :func:`cross_node_checks` - what only the deploy side can see: duplicate
  hostnames, MAC addresses, product_uuids and machine-ids, and clock skew.

A problem is ``{"check", "found", "expected"}``; the runner prints it as
``<node>: <check>: found <found>, expected <expected>``.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import brine_kernel

# --------------------------------------------------------------------------
# Data: what each role needs
# --------------------------------------------------------------------------

#: Per role: minimum CPUs, memory (MiB, as MemTotal counts it) and free disk
#: under /var/lib (MiB), and the TCP ports its components listen on. A node with
#: several roles needs the largest of each minimum and every port. Memory as
#: kubespray's minimal_master_memory_mb / minimal_node_memory_mb; CPUs as
#: kubeadm's preflight (2 for a control-plane node). ``"api"`` is env.api_port;
#: ``owner`` (or ``owners``) is the process name (as /proc/<pid>/comm, 15 characters
#: at most) of the component itself, which may hold its port when the deploy runs again.
REQUIREMENTS: dict[str, dict[str, Any]] = {
    "master": {
        "cpus": 2, "memory_mib": 1500, "disk_mib": 4096,
        "ports": [
            # the API server on the node's address, the load balancer on 127.0.0.1
            {"port": "api", "for": "kube-apiserver and the API load balancer", "owners": ["kube-apiserver", "nginx"]},
            {"port": 8081, "address": "127.0.0.1", "for": "the API load balancer's health", "owner": "nginx"},
            {"port": 10250, "for": "kubelet", "owner": "kubelet"},
            {"port": 10257, "for": "kube-controller-manager", "owner": "kube-controller"},
            {"port": 10259, "for": "kube-scheduler", "owner": "kube-scheduler"},
        ],
    },
    "etcd": {
        "cpus": 1, "memory_mib": 1024, "disk_mib": 4096,
        "ports": [{"port": 2379, "for": "etcd clients", "owner": "etcd"},
                  {"port": 2380, "for": "etcd peers", "owner": "etcd"}],
    },
    "worker": {
        "cpus": 1, "memory_mib": 1024, "disk_mib": 4096,
        "ports": [
            {"port": 10250, "for": "kubelet", "owner": "kubelet"},
            {"port": "api", "address": "127.0.0.1", "for": "the API load balancer", "owner": "nginx"},
            {"port": 8081, "address": "127.0.0.1", "for": "the API load balancer's health", "owner": "nginx"},
        ],
    },
}
#: Every node: the NodePort range, free of listeners (kube-proxy serves it).
NODEPORT_RANGE = (30000, 32767)
#: Where containerd, kubelet and etcd keep their data.
DISK_PATH = "/var/lib"
#: Operating systems Brine deploys on: (os-release ID, VERSION_ID).
SUPPORTED_OS = (("debian", "12"),)
#: Kernel modules every node needs, and those kube-proxy's ipvs mode adds.
BASE_MODULES = ("br_netfilter", "overlay")
IPVS_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack")
#: cgroup v1 hierarchies kubelet needs (kubeadm's system verification).
CGROUP_V1_REQUIRED = ("cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids")
CGROUP_V2_REQUIRED = ("cpu", "cpuset", "memory", "pids")
#: Another container runtime next to the one the cluster declares.
CONFLICTING_RUNTIMES: dict[str, dict[str, tuple[str, ...]]] = {
    "containerd": {
        "packages": ("docker.io", "docker-ce", "moby-engine", "podman", "cri-o"),
        "binaries": ("dockerd", "podman", "crio"),
    },
    "docker": {"packages": ("podman", "cri-o"), "binaries": ("podman", "crio")},
}
#: Host firewalls that would drop pod and service traffic behind kube-proxy's back.
CONFLICTING_SERVICES = ("firewalld", "ufw")
#: Clock skew allowed between a node and the first master (etcd, TLS and token
#: expiry all lean on agreeing clocks).
MAX_SKEW_SECONDS = 30.0
#: Keys a requirements override may set, per role.
OVERRIDABLE = ("cpus", "memory_mib", "disk_mib")


def modules_for(kube_proxy_mode: str) -> list[str]:
    """The kernel modules a node needs for kube-proxy's mode."""
    return list(BASE_MODULES) + (list(IPVS_MODULES) if kube_proxy_mode == "ipvs" else [])


def requirements_for(roles: Iterable[str], api_port: int = 6443,
                     overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """
    What a node with ``roles`` needs: the largest minimum of its roles (after
    ``overrides``, ``{role: {cpus|memory_mib|disk_mib: n}}``) and every port
    (``{"port", "address", "for", "owners"}``, address None for any; owners:
    the process names that may hold it, its own component's).
    """
    overrides = overrides or {}
    need: dict[str, Any] = {"cpus": 1, "memory_mib": 0, "disk_mib": 0, "ports": []}
    seen = set()
    for role in roles:
        table = {**REQUIREMENTS.get(role, {}), **(overrides.get(role) or {})}
        for key in OVERRIDABLE:
            if key in table:
                need[key] = max(need[key], int(table[key]))
        for port in table.get("ports", []):
            number = int(api_port) if port["port"] == "api" else int(port["port"])
            address = port.get("address")
            if (address, number) not in seen:
                seen.add((address, number))
                need["ports"].append({"port": number, "address": address, "for": port["for"],
                                      "owners": port.get("owners") or ([port["owner"]] if port.get("owner") else [])})
    return need


def check_overrides(overrides: Any) -> list[str]:
    """What is wrong with a requirements override, one message per mistake."""
    if overrides in (None, {}):
        return []
    if not isinstance(overrides, dict):
        return [f"require: {overrides!r} is not a mapping (e.g. {{worker: {{memory_mib: 4096}}}})"]
    errors = []
    for role, values in overrides.items():
        if role not in REQUIREMENTS:
            errors.append(f"require.{role}: not a role ({', '.join(REQUIREMENTS)})")
            continue
        if not isinstance(values, dict):
            errors.append(f"require.{role}: {values!r} is not a mapping of {', '.join(OVERRIDABLE)}")
            continue
        for key, value in values.items():
            if key not in OVERRIDABLE:
                errors.append(f"require.{role}.{key}: not a requirement ({', '.join(OVERRIDABLE)})")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                errors.append(f"require.{role}.{key}: {value!r} is not a whole number >= 0")
    return errors


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing a node lacks: the check, what was found, what was expected."""

    check: str
    found: str
    expected: str

    def line(self, node: str) -> str:
        return f"{node}: {self.check}: found {self.found}, expected {self.expected}"


@dataclass
class Report:
    """What the checks on one node found."""

    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def problem(self, check: str, found: object, expected: object) -> None:
        self.problems.append(Problem(check, str(found), str(expected)))

    def warning(self, check: str, found: object, expected: object) -> None:
        self.warnings.append(Problem(check, str(found), str(expected)))

    def as_dict(self) -> dict[str, Any]:
        return {"problems": [asdict(p) for p in self.problems], "warnings": [asdict(p) for p in self.warnings],
                "facts": self.facts}


# --------------------------------------------------------------------------
# Readers (paths in, plain data out)
# --------------------------------------------------------------------------


def os_release(path: str) -> dict[str, str]:
    text = brine_kernel.read_text(path) or ""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def meminfo_mib(path: str) -> int | None:
    """MemTotal in MiB."""
    for line in (brine_kernel.read_text(path) or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return None


def cgroup_memory_limit_mib(paths: brine_kernel.KernelPaths) -> int | None:
    """The memory limit of the node's own cgroup as it sees it (v2 memory.max, v1 limit_in_bytes), if any."""
    for name in ("fs/cgroup/memory.max", "fs/cgroup/memory/memory.limit_in_bytes"):
        text = brine_kernel.read_text(os.path.join(paths.sys, name))
        if text and text.strip().isdigit():
            limit = int(text.strip())
            if limit < 1 << 60:  # v1 says "no limit" with a huge number
                return limit // (1024 * 1024)
    return None


@dataclass(frozen=True)
class Listener:
    """A TCP socket in LISTEN state."""

    address: str
    port: int
    inode: str

    def shown(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # IPv6: four 32-bit words, each in host (little-endian) order.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped) if address.ipv4_mapped else str(address)


def tcp_listeners(proc_net_files: Iterable[str]) -> list[Listener]:
    """Every LISTEN socket in /proc/net/tcp and /proc/net/tcp6 (read, never bound)."""
    listeners = []
    for path in proc_net_files:
        for line in (brine_kernel.read_text(path) or "").splitlines()[1:]:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":
                continue
            address, _, port = fields[1].partition(":")
            listeners.append(Listener(_hex_address(address), int(port, 16), fields[9]))
    return listeners


def socket_owners(proc: str, inodes: set[str]) -> dict[str, tuple[str, str]]:
    """``{socket inode: (comm, pid)}`` for the inodes asked, from /proc/<pid>/fd."""
    owners: dict[str, tuple[str, str]] = {}
    if not inodes:
        return owners
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return owners
    for pid in pids:
        fd_dir = os.path.join(proc, pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            inode = target[len("socket:["):-1] if target.startswith("socket:[") else None
            if inode in inodes and inode not in owners:
                comm = (brine_kernel.read_text(os.path.join(proc, pid, "comm")) or "?").strip()
                owners[inode] = (comm, pid)
    return owners


def _wildcard(address: str | None) -> bool:
    return address in (None, "0.0.0.0", "::")


def conflicts(listener: Listener, port: int, address: str | None) -> bool:
    """Whether ``listener`` keeps a component from listening on ``address:port`` (None: every address)."""
    if listener.port != port:
        return False
    return _wildcard(address) or _wildcard(listener.address) or listener.address == address


def local_addresses(proc: str) -> set[str]:
    """Addresses configured on this node's interfaces (its network namespace): fib_trie and if_inet6."""
    found = set()
    lines = (brine_kernel.read_text(os.path.join(proc, "net", "fib_trie")) or "").splitlines()
    for previous, line in itertools.pairwise(lines):
        if line.strip() == "/32 host LOCAL" and "|--" in previous:
            found.add(previous.split("|--", 1)[1].strip())
    for line in (brine_kernel.read_text(os.path.join(proc, "net", "if_inet6")) or "").splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def installed_packages(dpkg_status: str) -> set[str]:
    """Packages dpkg has installed (Status: install ok installed)."""
    packages, name = set(), None
    for line in (brine_kernel.read_text(dpkg_status) or "").splitlines():
        if line.startswith("Package:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("Status:") and name and line.split()[-1] == "installed":
            packages.add(name)
        elif not line.strip():
            name = None
    return packages


MOUNT_FLAGS = frozenset({"rw", "ro", "nosuid", "nodev", "noexec", "relatime", "noatime", "strictatime", "sync"})


def mounted_cgroups(proc: str) -> tuple[str, set[str]]:
    """("v2" | "v1" | "hybrid" | "none", the v1 hierarchies mounted) from /proc/self/mounts."""
    text = brine_kernel.read_text(os.path.join(proc, "self", "mounts")) or ""
    v1, v2_at = set(), None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            v2_at = v2_at or fields[1]
        elif fields[2] == "cgroup":
            v1 |= {option for option in fields[3].split(",") if option not in MOUNT_FLAGS and "=" not in option}
    if v2_at == "/sys/fs/cgroup":
        return "v2", set()
    if v1:
        return ("hybrid" if v2_at else "v1"), v1
    return ("v2" if v2_at else "none"), set()


def v2_controllers(sys_root: str) -> set[str]:
    return set((brine_kernel.read_text(os.path.join(sys_root, "fs", "cgroup", "cgroup.controllers")) or "").split())


# --------------------------------------------------------------------------
# The checks on one node
# --------------------------------------------------------------------------


@dataclass
class Probes:
    """What the checks read apart from files: each replaceable in tests."""

    cpus: Callable[[], int] | None = None
    disk_free_mib: Callable[[str], int] | None = None
    which: Callable[[str], str | None] | None = None
    service_active: Callable[[str], bool] | None = None
    modprobe: Callable[[str], tuple[bool, str]] | None = None
    hostname: Callable[[], str] | None = None
    macs: Callable[[], dict[str, str]] | None = None


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    return path or "/"


def statvfs_free_mib(path: str) -> int:
    stats = os.statvfs(_nearest_existing(path))
    return stats.f_bavail * stats.f_frsize // (1024 * 1024)


def node_checks(
    *,
    roles: list[str],
    address: str | None,
    ports: list[dict[str, Any]],
    min_cpus: int,
    min_memory_mib: int,
    min_disk_mib: int,
    modules: list[str],
    sysctls: dict[str, Any] | None = None,
    tolerated: Iterable[str] = (),
    kube_proxy_mode: str = "iptables",
    runtime: str = "containerd",
    name: str | None = None,
    disk_path: str = DISK_PATH,
    nodeport_range: tuple[int, int] = NODEPORT_RANGE,
    paths: brine_kernel.KernelPaths | None = None,
    probes: Probes | None = None,
) -> Report:
    """Run every check on this node; change nothing. The report holds every problem found."""
    paths = paths or brine_kernel.KernelPaths()
    probes = probes or Probes()
    report = Report()
    facts = report.facts
    facts["roles"] = list(roles)

    # Operating system
    release = os_release(os.path.join(paths.etc, "os-release"))
    os_id, version = release.get("ID", "?"), release.get("VERSION_ID", "?")
    facts["os"] = f"{release.get('NAME', os_id)} {version}".strip()
    if (os_id, version) not in SUPPORTED_OS:
        report.problem("os", f"{release.get('PRETTY_NAME') or facts['os']} (ID={os_id}, VERSION_ID={version})",
                       " or ".join(f"ID={i} VERSION_ID={v}" for i, v in SUPPORTED_OS) + " (Debian 12)")
    facts["kernel"] = brine_kernel.kernel_release(paths)
    facts["container"] = brine_kernel.container(paths)

    # init
    init = (brine_kernel.read_text(os.path.join(paths.proc, "1", "comm")) or "?").strip()
    facts["init"] = init
    if init != "systemd":
        report.problem("init", f"PID 1 is {init}", "systemd as PID 1 (containerd, kubelet and etcd are systemd services)")

    # CPU, memory, disk
    cpus = (probes.cpus or (lambda: len(os.sched_getaffinity(0))))()
    facts["cpus"] = cpus
    if cpus < min_cpus:
        report.problem("cpus", f"{cpus} CPU(s)", f"at least {min_cpus} for roles {', '.join(roles)}")
    memory = meminfo_mib(os.path.join(paths.proc, "meminfo"))
    limit = cgroup_memory_limit_mib(paths)
    usable = min(m for m in (memory, limit) if m is not None) if memory is not None or limit is not None else None
    facts["memory_mib"] = usable
    if usable is None:
        report.problem("memory", f"no MemTotal in {paths.proc}/meminfo", f"at least {min_memory_mib} MiB")
    elif usable < min_memory_mib:
        how = f"{usable} MiB" + (f" (cgroup limit; MemTotal {memory} MiB)" if limit is not None and limit == usable else "")
        report.problem("memory", how, f"at least {min_memory_mib} MiB for roles {', '.join(roles)}")
    free = (probes.disk_free_mib or statvfs_free_mib)(disk_path)
    facts["disk_free_mib"] = free
    if free < min_disk_mib:
        report.problem(f"disk {disk_path}", f"{free} MiB free", f"at least {min_disk_mib} MiB free for roles {', '.join(roles)}")

    # Swap: a warning only, the os state turns it off.
    swaps = brine_kernel.active_swaps(paths)
    facts["swap"] = [s["device"] for s in swaps]
    if swaps:
        report.warning("swap", "on (" + ", ".join(f"{s['device']} {s['size_kib']} KiB" for s in swaps) + ")",
                       "off (the os step turns it off and removes it from /etc/fstab"
                       + (f"; this node shares its kernel with its host ({facts['container']}): turn it off there)"
                          if facts["container"] else ")"))

    # cgroups
    version_found, v1 = mounted_cgroups(paths.proc)
    facts["cgroup"] = version_found
    if version_found == "v2":
        missing = sorted(set(CGROUP_V2_REQUIRED) - v2_controllers(paths.sys))
        if missing:
            report.problem("cgroups", f"cgroup v2 without the {', '.join(missing)} controller(s)",
                           f"cgroup v2 with {', '.join(CGROUP_V2_REQUIRED)}")
    elif version_found in ("v1", "hybrid"):
        missing = sorted(set(CGROUP_V1_REQUIRED) - v1)
        if missing:
            report.problem("cgroups", f"cgroup {version_found} without the {', '.join(missing)} hierarchy(ies)",
                           f"cgroup hierarchies {', '.join(CGROUP_V1_REQUIRED)} mounted (or cgroup v2)")
    else:
        report.problem("cgroups", "no cgroup file system mounted", "cgroup v2 (or v1) mounted at /sys/fs/cgroup")

    # Kernel modules
    release_name = facts["kernel"]
    facts["modules"] = {}
    for module in modules:
        status = brine_kernel.module_status(module, paths, release_name,
                                            probes.modprobe or brine_kernel.modprobe_dry_run)
        facts["modules"][module] = status.state
        if not status.available:
            why = f" (kube_proxy.mode {kube_proxy_mode})" if module in IPVS_MODULES and kube_proxy_mode == "ipvs" else ""
            fix = "; or set env.kube_proxy.mode: iptables" if why else ""
            report.problem(f"kernel module {module}", status.detail,
                           f"{module} loaded, built in or loadable{why}{fix}")

    # sysctl entries the os step will set: each must hold already, or be settable here.
    tolerated = set(tolerated)
    for key, value in (sysctls or {}).items():
        wanted, found = brine_kernel.normalize(value), brine_kernel.read_sysctl(key, paths)
        if found is None or found == wanted:
            continue  # None: its module is not loaded yet (the module check covers it)
        if facts["container"] and brine_kernel.kernel_wide(key):
            why = f"kernel-wide, owned by the host ({facts['container']} container)"
        elif not brine_kernel.sysctl_writable(key, paths):
            why = "read-only here" + (" (kernel-wide)" if brine_kernel.kernel_wide(key) else "")
        else:
            continue  # the os step sets it
        shown = found or "(empty)"
        if key in tolerated:
            report.warning(f"sysctl {key}", f"{shown}, {why}", f"{wanted} (the os step keeps the host's value: tolerated)")
        else:
            report.problem(f"sysctl {key}", f"{shown}, {why}", f"{wanted}, or an entry the os step can set")

    # Ports
    listeners = tcp_listeners([os.path.join(paths.proc, "net", "tcp"), os.path.join(paths.proc, "net", "tcp6")])
    taken: list[tuple[str, Listener, str, list[str]]] = []
    for port in ports:
        for listener in listeners:
            if conflicts(listener, int(port["port"]), port.get("address")):
                where = f"{port['address']}:{port['port']}" if port.get("address") else f"{port['port']}"
                taken.append((f"port {where}", listener, f"free for {port['for']}", list(port.get("owners") or [])))
    low, high = nodeport_range
    for listener in listeners:
        if low <= listener.port <= high:
            taken.append((f"port {listener.port}", listener, f"no listener in the NodePort range {low}-{high}", []))
    owners = socket_owners(paths.proc, {listener.inode for _, listener, _, _ in taken})
    seen = set()
    facts["ports_held_by_own_components"] = []
    for check, listener, expected, allowed in taken:
        if (check, listener.shown()) in seen:
            continue
        seen.add((check, listener.shown()))
        comm, pid = owners.get(listener.inode, ("", ""))
        if comm and comm in allowed:  # the component itself, from an earlier deploy
            facts["ports_held_by_own_components"].append(f"{listener.shown()} {comm}")
            continue
        owner = f"{comm} (pid {pid})" if comm else "a process"
        report.problem(check, f"{owner} listening on {listener.shown()}", expected)

    # The node's address
    addresses = local_addresses(paths.proc)
    facts["addresses"] = sorted(a for a in addresses if not ipaddress.ip_address(a).is_loopback)
    if address and str(ipaddress.ip_address(address)) not in addresses:
        report.problem("address", f"{address} not configured on any interface (has: {', '.join(facts['addresses']) or 'none'})",
                       f"{address}, the inventory's address, on one of its interfaces")

    # Conflicting runtimes and firewalls
    installed = installed_packages(paths.dpkg_status)
    conflicting = CONFLICTING_RUNTIMES.get(runtime, {})
    for package in conflicting.get("packages", ()):
        if package in installed:
            report.problem(f"package {package}", "installed", f"not installed: another container runtime next to {runtime}")
    which = probes.which or shutil.which
    for binary in conflicting.get("binaries", ()):
        location = which(binary)
        if location:
            report.problem(f"program {binary}", location, f"absent: another container runtime next to {runtime}")
    active = probes.service_active or service_active
    for service in CONFLICTING_SERVICES:
        if active(service):
            report.problem(f"service {service}", "active",
                           "inactive: a host firewall drops pod and service traffic behind kube-proxy's back")

    # Identity, for the cross-node checks on the deploy side.
    facts["hostname"] = (probes.hostname or socket.gethostname)()
    if name and facts["hostname"] != name:
        report.warning("hostname", facts["hostname"], f"{name}, the inventory's name (kubelet registers as {name})")
    facts["macs"] = (probes.macs or interface_macs)()
    uuid = brine_kernel.read_text(os.path.join(paths.sys, "class", "dmi", "id", "product_uuid"))
    facts["product_uuid"] = uuid.strip().lower() if uuid and uuid.strip() else None
    machine_id = brine_kernel.read_text(os.path.join(paths.etc, "machine-id"))
    facts["machine_id"] = machine_id.strip() if machine_id and machine_id.strip() else None
    return report


def service_active(service: str) -> bool:
    try:
        proc = subprocess.run(["systemctl", "is-active", "--quiet", f"{service}.service"], timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def interface_macs() -> dict[str, str]:
    """
    ``{interface: MAC}`` of this node's network namespace, from netlink
    (``ip -j link``): /sys/class/net shows the namespace that mounted /sys,
    which on a container node is its host's. Loopback and all-zero MACs left out.
    """
    try:
        proc = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, timeout=30, check=False)
        links = json.loads(proc.stdout) if proc.returncode == 0 else []
    except (OSError, subprocess.SubprocessError, ValueError):
        links = []
    return parse_ip_links(links)


def parse_ip_links(links: list[dict[str, Any]]) -> dict[str, str]:
    macs = {}
    for link in links:
        mac = str(link.get("address", "")).lower()
        if link.get("link_type") == "loopback" or not mac or set(mac) <= {"0", ":"} or len(mac) != 17:
            continue
        macs[link.get("ifname", "?")] = mac
    return macs


# --------------------------------------------------------------------------
# Across nodes, on the deploy side
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One node's reply, with the deploy side's clock around it."""

    node: str
    facts: dict[str, Any]
    sent: float  # deploy-side time when the call was sent
    received: float  # deploy-side time when the reply arrived


def clock_offset(answer: Answer) -> tuple[float, float]:
    """
    The node's clock minus the deploy side's, as an interval: the node read its
    clock somewhere between sending and receiving, so
    ``node_time - received <= offset <= node_time - sent``.
    """
    node_time = float(answer.facts["time"])
    return node_time - answer.received, node_time - answer.sent


def cross_node_checks(answers: list[Answer], reference: str | None,
                      max_skew: float = MAX_SKEW_SECONDS) -> dict[str, list[Problem]]:
    """
    Duplicate identities and clock skew against ``reference`` (the first master),
    as ``{node: [problems]}``. Skew is reported only when it is certain: the
    smallest skew the two offset intervals allow exceeds ``max_skew``.
    """
    problems: dict[str, list[Problem]] = {}
    for key, what in (("hostname", "hostname"), ("product_uuid", "product_uuid"), ("machine_id", "machine-id")):
        holders: dict[str, list[str]] = {}
        for answer in answers:
            value = answer.facts.get(key)
            if value:
                holders.setdefault(str(value), []).append(answer.node)
        for value, nodes in holders.items():
            if len(nodes) > 1:
                for node in nodes:
                    others = ", ".join(n for n in nodes if n != node)
                    problems.setdefault(node, []).append(
                        Problem(what, f"{value}, the same as {others}", f"a {what} no other node has"))
    macs: dict[str, list[tuple[str, str]]] = {}
    for answer in answers:
        for interface, mac in (answer.facts.get("macs") or {}).items():
            macs.setdefault(mac, []).append((answer.node, interface))
    for mac, holders in macs.items():
        nodes = sorted({node for node, _ in holders})
        if len(nodes) > 1:
            for node, interface in holders:
                others = ", ".join(n for n in nodes if n != node)
                problems.setdefault(node, []).append(
                    Problem(f"mac {interface}", f"{mac}, the same as {others}", "a MAC address no other node has"))
    by_node = {a.node: a for a in answers}
    if reference in by_node:
        ref_low, ref_high = clock_offset(by_node[reference])
        for answer in answers:
            if answer.node == reference:
                continue
            low, high = clock_offset(answer)
            # The skew lies in [low - ref_high, high - ref_low].
            least = max(low - ref_high, ref_low - high, 0.0)
            if least > max_skew:
                estimate = (low + high) / 2 - (ref_low + ref_high) / 2
                uncertainty = ((high - low) + (ref_high - ref_low)) / 2
                problems.setdefault(answer.node, []).append(Problem(
                    "time skew", f"{estimate:+.1f} s against {reference} (± {uncertainty:.1f} s)",
                    f"at most {max_skew:g} s (keep every clock in sync, e.g. with chrony or systemd-timesyncd)"))
    return problems
