"""
Preflight logic on fake nodes: a healthy node's /proc, /sys and /etc under a
temporary folder, then one change per case, and the problems each change must
(and must only) produce. Then the cross-node checks and the requirements table.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import brine_kernel
import brine_preflight
import pytest
import yaml

from tests.saltenv import REPO_ROOT

RELEASE = "6.1.0-test"
V1_MOUNTS = "".join(
    f"cgroup /sys/fs/cgroup/{c} cgroup rw,nosuid,nodev,noexec,relatime,{c} 0 0\n"
    for c in ("cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "blkio")
)
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
TCP_HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
FIB_TRIE = """Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 10.0.0.0
        /24 link UNICAST
     |-- 10.0.0.11
        /32 host LOCAL
     |-- 127.0.0.1
        /32 host LOCAL
"""


def tcp_line(address_hex: str, port: int, inode: int, state: str = "0A") -> str:
    return (f"   0: {address_hex}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000"
            f"     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n")


IPV4_ANY, IPV4_LOOPBACK, IPV4_NODE = "00000000", "0100007F", "0B00000A"  # 0.0.0.0, 127.0.0.1, 10.0.0.11
IPV6_ANY = "0" * 32
IPV6_MAPPED_LOOPBACK = "0000000000000000FFFF00000100007F"  # ::ffff:127.0.0.1


class Node:
    """A fake node: files under ``root`` and probes, healthy until a case changes it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.paths = brine_kernel.KernelPaths.under(str(root))
        self.cpus, self.disk_mib, self.hostname = 4, 50_000, "master1"
        self.binaries: dict[str, str] = {}
        self.active: set[str] = set()
        self.loadable: set[str] = set()
        self.write("etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                                     'VERSION_ID="12"\nID=debian\n')
        self.write("etc/machine-id", "0123456789abcdef0123456789abcdef\n")
        self.write("proc/1/comm", "systemd\n")
        self.write("proc/sys/kernel/osrelease", RELEASE + "\n")
        self.write("proc/meminfo", "MemTotal:        4030000 kB\nMemFree:  100 kB\n")
        self.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n")
        self.write("proc/self/mounts", V2_MOUNTS)
        self.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
        self.write("proc/modules", "br_netfilter 32768 0 - Live 0x0\nbridge 311296 1 br_netfilter, Live 0x0\n")
        self.write(f"lib/modules/{RELEASE}/modules.builtin", "kernel/fs/overlayfs/overlay.ko\n")
        self.write("proc/net/tcp", TCP_HEADER + tcp_line(IPV4_ANY, 22, 100))
        self.write("proc/net/tcp6", TCP_HEADER)
        self.write("proc/net/fib_trie", FIB_TRIE)
        self.write("proc/net/if_inet6", "00000000000000000000000000000001 01 80 10 80       lo\n")
        self.write("var/lib/dpkg/status", "Package: openssh-server\nStatus: install ok installed\n\n"
                                          "Package: podman\nStatus: deinstall ok config-files\n\n")
        for key, value in {"net.ipv4.ip_forward": "0", "kernel.panic": "0", "vm.overcommit_memory": "0"}.items():
            self.write("proc/sys/" + key.replace(".", "/"), value + "\n")

    def write(self, relative: str, text: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def config(self, text: str) -> None:
        (self.root / "proc").mkdir(parents=True, exist_ok=True)
        with gzip.open(self.root / "proc" / "config.gz", "wt") as handle:
            handle.write(text)

    def probes(self) -> brine_preflight.Probes:
        return brine_preflight.Probes(
            cpus=lambda: self.cpus,
            disk_free_mib=lambda path: self.disk_mib,
            which=self.binaries.get,
            service_active=lambda service: service in self.active,
            modprobe=lambda name: (name in self.loadable, "" if name in self.loadable else f"FATAL: Module {name} not found"),
            hostname=lambda: self.hostname,
            macs=lambda: {"eth0": "52:54:00:00:00:11"},
        )

    def check(self, roles=("master", "etcd"), mode="iptables", require=None, **extra) -> brine_preflight.Report:
        need = brine_preflight.requirements_for(roles, 6443, require)
        arguments = {
            "roles": list(roles), "address": "10.0.0.11", "ports": need["ports"], "min_cpus": need["cpus"],
            "min_memory_mib": need["memory_mib"], "min_disk_mib": need["disk_mib"],
            "modules": brine_preflight.modules_for(mode), "kube_proxy_mode": mode, "name": "master1",
            "paths": self.paths, "probes": self.probes(),
        }
        arguments.update(extra)
        return brine_preflight.node_checks(**arguments)


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path)


def checks(report):
    return sorted(p.check for p in report.problems)


def by_check(report, check):
    return next(p for p in report.problems if p.check == check)


def test_a_healthy_node_has_no_problem(node):
    report = node.check()
    assert report.problems == []
    assert report.warnings == []
    assert report.facts["modules"] == {"br_netfilter": "loaded", "overlay": "built in"}
    assert report.facts["addresses"] == ["10.0.0.11"]
    assert report.facts["machine_id"] == "0123456789abcdef0123456789abcdef"
    assert report.facts["product_uuid"] is None


def ubuntu(node):
    node.write("etc/os-release", 'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\n')


def debian11(node):
    node.write("etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\nID=debian\n')


def bash_init(node):
    node.write("proc/1/comm", "bash\n")


def one_cpu(node):
    node.cpus = 1


def little_memory(node):
    node.write("proc/meminfo", "MemTotal:        1024000 kB\n")  # 1000 MiB


def cgroup_limit(node):
    node.write("sys/fs/cgroup/memory.max", str(512 * 1024 * 1024) + "\n")


def small_disk(node):
    node.disk_mib = 100


def v1_without_pids(node):
    node.write("proc/self/mounts", V1_MOUNTS.replace("cgroup /sys/fs/cgroup/pids cgroup rw,nosuid,nodev,noexec,relatime,pids 0 0\n", ""))


def v2_without_memory(node):
    node.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io pids\n")


def no_cgroups(node):
    node.write("proc/self/mounts", "proc /proc proc rw 0 0\n")


def kubelet_port_taken(node):
    node.write("proc/net/tcp", TCP_HEADER + tcp_line(IPV4_ANY, 22, 100) + tcp_line(IPV4_ANY, 10250, 4242))


def etcd_port_taken_on_the_node_address(node):
    node.write("proc/net/tcp", TCP_HEADER + tcp_line(IPV4_NODE, 2379, 4243))


def nodeport_taken_on_ipv6(node):
    node.write("proc/net/tcp6", TCP_HEADER + tcp_line(IPV6_ANY, 30080, 4244))


def address_missing(node):
    node.write("proc/net/fib_trie", FIB_TRIE.replace("10.0.0.11", "10.0.0.99"))


def docker_installed(node):
    node.write("var/lib/dpkg/status", "Package: docker.io\nStatus: install ok installed\n\n")
    node.binaries["dockerd"] = "/usr/sbin/dockerd"


def crio_binary(node):
    node.binaries["crio"] = "/usr/local/bin/crio"


def firewalld_active(node):
    node.active.add("firewalld")


def established_connection_is_no_listener(node):
    node.write("proc/net/tcp", TCP_HEADER + tcp_line(IPV4_ANY, 10250, 4245, state="01"))


@pytest.mark.parametrize("change, roles, expected", [
    (ubuntu, ("master",), ["os"]),
    (debian11, ("worker",), ["os"]),
    (bash_init, ("worker",), ["init"]),
    (one_cpu, ("master",), ["cpus"]),
    (one_cpu, ("worker",), []),
    (little_memory, ("master",), ["memory"]),
    (little_memory, ("worker",), ["memory"]),
    (cgroup_limit, ("worker",), ["memory"]),
    (small_disk, ("etcd",), ["disk /var/lib"]),
    (v1_without_pids, ("worker",), ["cgroups"]),
    (v2_without_memory, ("worker",), ["cgroups"]),
    (no_cgroups, ("worker",), ["cgroups"]),
    (kubelet_port_taken, ("master",), ["port 10250"]),
    (kubelet_port_taken, ("worker",), ["port 10250"]),
    (kubelet_port_taken, ("etcd",), []),
    (etcd_port_taken_on_the_node_address, ("master", "etcd"), ["port 2379"]),
    (etcd_port_taken_on_the_node_address, ("worker",), []),
    (nodeport_taken_on_ipv6, ("worker",), ["port 30080"]),
    (address_missing, ("worker",), ["address"]),
    (docker_installed, ("worker",), ["package docker.io", "program dockerd"]),
    (crio_binary, ("worker",), ["program crio"]),
    (firewalld_active, ("master",), ["service firewalld"]),
    (established_connection_is_no_listener, ("master",), []),
])
def test_each_shortfall_is_one_problem(node, change, roles, expected):
    change(node)
    assert checks(node.check(roles=roles)) == expected


def test_problem_texts_name_what_was_found_and_expected(node):
    little_memory(node)
    kubelet_port_taken(node)
    ubuntu(node)
    report = node.check(roles=("worker",))
    assert [p.line("worker1") for p in report.problems] == [
        "worker1: os: found Ubuntu 22.04.4 LTS (ID=ubuntu, VERSION_ID=22.04), expected ID=debian VERSION_ID=12 (Debian 12)",
        "worker1: memory: found 1000 MiB, expected at least 1024 MiB for roles worker",
        "worker1: port 10250: found a process listening on 0.0.0.0:10250, expected free for kubelet",
    ]


def test_the_memory_minimum_can_be_raised_for_a_run(node):
    report = node.check(roles=("worker",), require={"worker": {"memory_mib": 100_000}})
    assert [p.line("w") for p in report.problems] == ["w: memory: found 3935 MiB, expected at least 100000 MiB for roles worker"]


def test_a_cgroup_limit_below_memtotal_is_what_counts(node):
    cgroup_limit(node)
    assert by_check(node.check(roles=("worker",)), "memory").found == "512 MiB (cgroup limit; MemTotal 3935 MiB)"


def test_worker_load_balancer_port_is_checked_on_loopback_only(node):
    node.write("proc/net/tcp", TCP_HEADER + tcp_line(IPV4_NODE, 6443, 1))
    assert checks(node.check(roles=("worker",))) == []
    node.write("proc/net/tcp6", TCP_HEADER + tcp_line(IPV6_MAPPED_LOOPBACK, 6443, 2))
    report = node.check(roles=("worker",))
    assert [(p.check, p.found, p.expected) for p in report.problems] == [
        ("port 127.0.0.1:6443", "a process listening on 127.0.0.1:6443", "free for the API load balancer")]


def test_the_owner_of_a_taken_port_is_named(node):
    kubelet_port_taken(node)
    fd = node.root / "proc" / "777" / "fd"
    fd.mkdir(parents=True)
    os.symlink("socket:[4242]", fd / "5")
    node.write("proc/777/comm", "socat\n")
    assert by_check(node.check(roles=("worker",)), "port 10250").found == "socat (pid 777) listening on 0.0.0.0:10250"


@pytest.mark.parametrize("comm, problem", [("etcd", False), ("python3", True)])
def test_a_port_held_by_its_own_component_is_no_problem_on_a_rerun(node, comm, problem):
    etcd_port_taken_on_the_node_address(node)
    fd = node.root / "proc" / "900" / "fd"
    fd.mkdir(parents=True)
    os.symlink("socket:[4243]", fd / "7")
    node.write("proc/900/comm", comm + "\n")
    report = node.check(roles=("master", "etcd"))
    assert checks(report) == (["port 2379"] if problem else [])
    assert report.facts["ports_held_by_own_components"] == ([] if problem else ["10.0.0.11:2379 etcd"])


def test_swap_is_a_warning_only(node):
    node.write("proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n")
    report = node.check(roles=("worker",))
    assert report.problems == []
    assert [(w.check, w.found) for w in report.warnings] == [("swap", "on (/swapfile 1048572 KiB)")]


def test_a_hostname_other_than_the_inventory_name_is_a_warning(node):
    node.hostname = "localhost"
    report = node.check()
    assert report.problems == []
    assert [w.check for w in report.warnings] == ["hostname"]


# --------------------------------------------------------------------------
# Kernel modules
# --------------------------------------------------------------------------

NO_IPVS_CONFIG = "# CONFIG_MODULES is not set\nCONFIG_BRIDGE_NETFILTER=y\nCONFIG_OVERLAY_FS=y\n# CONFIG_IP_VS is not set\nCONFIG_NF_CONNTRACK=y\n"


def test_ipvs_is_refused_on_a_kernel_without_ip_vs_and_without_modules(node):
    (node.root / "proc" / "modules").unlink()
    (node.root / "sys" / "module" / "nf_conntrack").mkdir(parents=True)
    node.config(NO_IPVS_CONFIG)
    report = node.check(mode="ipvs")
    assert checks(report) == ["kernel module ip_vs", "kernel module ip_vs_rr", "kernel module ip_vs_sh", "kernel module ip_vs_wrr"]
    problem = by_check(report, "kernel module ip_vs")
    assert problem.found.startswith("not loaded, not built in: CONFIG_IP_VS is not set in ")
    assert "this kernel cannot load modules (no /proc/modules; CONFIG_MODULES is not set)" in problem.found
    assert problem.expected == "ip_vs loaded, built in or loadable (kube_proxy.mode ipvs); or set env.kube_proxy.mode: iptables"
    assert report.facts["modules"] == {"br_netfilter": "built in", "overlay": "built in", "ip_vs": "missing",
                                       "ip_vs_rr": "missing", "ip_vs_wrr": "missing", "ip_vs_sh": "missing",
                                       "nf_conntrack": "built in"}
    assert node.check(mode="iptables").problems == []


def test_ipvs_passes_where_the_modules_can_be_loaded(node):
    node.loadable |= set(brine_preflight.IPVS_MODULES)
    report = node.check(mode="ipvs")
    assert report.problems == []
    assert report.facts["modules"]["ip_vs"] == "loadable"


@pytest.mark.parametrize("setup, state", [
    (lambda n: n.write("proc/modules", "ip_vs 200000 0 - Live 0x0\n"), "loaded"),
    (lambda n: (n.root / "sys/module/ip_vs").mkdir(parents=True) or n.write("sys/module/ip_vs/initstate", "live\n"), "loaded"),
    (lambda n: (n.root / "sys/module/ip_vs").mkdir(parents=True), "built in"),
    (lambda n: n.write(f"lib/modules/{RELEASE}/modules.builtin", "kernel/net/netfilter/ipvs/ip_vs.ko\n"), "built in"),
    (lambda n: n.config("CONFIG_MODULES=y\nCONFIG_IP_VS=y\n"), "built in"),
    (lambda n: n.loadable.add("ip_vs"), "loadable"),
    (lambda n: None, "missing"),
])
def test_module_status_sources(node, setup, state):
    setup(node)
    status = brine_kernel.module_status("ip_vs", node.paths, RELEASE, node.probes().modprobe)
    assert status.state == state


def test_a_module_built_as_m_but_not_found_says_so(node):
    node.config("CONFIG_MODULES=y\nCONFIG_IP_VS=m\n")
    status = brine_kernel.module_status("ip_vs", node.paths, RELEASE, node.probes().modprobe)
    assert status.detail == ("not loaded, not built in: CONFIG_IP_VS=m in " + str(node.root / "proc/config.gz")
                             + " but modprobe -n ip_vs: FATAL: Module ip_vs not found")


# --------------------------------------------------------------------------
# sysctl entries the os step will set
# --------------------------------------------------------------------------


def test_a_sysctl_the_os_step_cannot_set_is_a_problem_unless_tolerated(node, monkeypatch):
    node.write("run/systemd/container", "systemd-nspawn\n")
    writable = {"net.ipv4.ip_forward": False}
    monkeypatch.setattr(brine_kernel, "sysctl_writable", lambda key, paths=None: writable.get(key, True))
    report = node.check(roles=("worker",), sysctls={"net.ipv4.ip_forward": 1, "kernel.panic": 10,
                                                    "vm.overcommit_memory": 1}, tolerated=["kernel.panic"])
    assert [(p.check, p.found, p.expected) for p in report.problems] == [
        ("sysctl net.ipv4.ip_forward", "0, read-only here", "1, or an entry the os step can set"),
        ("sysctl vm.overcommit_memory", "0, kernel-wide, owned by the host (systemd-nspawn container)",
         "1, or an entry the os step can set"),
    ]
    assert [(w.check, w.expected) for w in report.warnings] == [
        ("sysctl kernel.panic", "10 (the os step keeps the host's value: tolerated)")]


def test_a_sysctl_the_os_step_can_set_is_fine(node):
    report = node.check(roles=("worker",), sysctls={"net.ipv4.ip_forward": 1, "kernel.panic": 10, "net.bridge.absent": 1})
    assert report.problems == [] and report.warnings == []


# --------------------------------------------------------------------------
# Every problem at once
# --------------------------------------------------------------------------


def test_every_problem_is_reported_in_one_run(node):
    for change in (ubuntu, bash_init, one_cpu, little_memory, small_disk, v1_without_pids, kubelet_port_taken,
                   nodeport_taken_on_ipv6, address_missing, docker_installed, firewalld_active):
        change(node)
    report = node.check(roles=("master", "etcd"))
    assert checks(report) == sorted(["os", "init", "cpus", "memory", "disk /var/lib", "cgroups", "port 10250",
                                     "port 30080", "address", "package docker.io", "program dockerd",
                                     "service firewalld"])


# --------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------


def test_listeners_of_both_families_are_read():
    assert brine_preflight._hex_address("0100007F") == "127.0.0.1"
    assert brine_preflight._hex_address(IPV6_MAPPED_LOOPBACK) == "127.0.0.1"
    assert brine_preflight._hex_address("00000000000000000000000001000000") == "::1"
    assert brine_preflight._hex_address(IPV6_ANY) == "::"


def test_ip_links_skip_loopback_and_zero_macs():
    links = [{"ifname": "lo", "link_type": "loopback", "address": "00:00:00:00:00:00"},
             {"ifname": "eth0", "link_type": "ether", "address": "76:34:F4:07:7C:54"},
             {"ifname": "tun0", "link_type": "none"},
             {"ifname": "dummy0", "link_type": "ether", "address": "00:00:00:00:00:00"}]
    assert brine_preflight.parse_ip_links(links) == {"eth0": "76:34:f4:07:7c:54"}


def test_installed_packages_count_only_installed_ones(tmp_path):
    status = tmp_path / "status"
    status.write_text("Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: deinstall ok config-files\n\n"
                      "Package: c\nVersion: 1\nStatus: install ok installed\n")
    assert brine_preflight.installed_packages(str(status)) == {"a", "c"}


def test_cgroup_versions(tmp_path):
    (tmp_path / "self").mkdir()
    for mounts, version in ((V2_MOUNTS, "v2"), (V1_MOUNTS, "v1"), (V1_MOUNTS + V2_MOUNTS.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified "), "hybrid")):
        (tmp_path / "self" / "mounts").write_text(mounts)
        assert brine_preflight.mounted_cgroups(str(tmp_path))[0] == version


# --------------------------------------------------------------------------
# Across nodes
# --------------------------------------------------------------------------


def answer(node, sent=1000.0, received=1004.0, time_read=1002.0, **facts):
    base = {"hostname": node, "macs": {"eth0": f"52:54:00:00:00:{zlib.crc32(node.encode()) % 256:02x}"},
            "product_uuid": None, "machine_id": f"id-{node}", "time": time_read}
    return brine_preflight.Answer(node, {**base, **facts}, sent, received)


def lines(problems):
    return sorted(p.line(node) for node, found in problems.items() for p in found)


def test_distinct_nodes_in_step_have_no_problem():
    answers = [answer("master1"), answer("worker1", time_read=1003.5), answer("worker2", time_read=1000.5)]
    assert brine_preflight.cross_node_checks(answers, "master1") == {}


@pytest.mark.parametrize("facts, expected", [
    ({"hostname": "node"}, ["master1: hostname: found node, the same as worker1, expected a hostname no other node has",
                            "worker1: hostname: found node, the same as master1, expected a hostname no other node has"]),
    ({"macs": {"eth0": "52:54:00:aa:bb:cc"}},
     ["master1: mac eth0: found 52:54:00:aa:bb:cc, the same as worker1, expected a MAC address no other node has",
      "worker1: mac eth0: found 52:54:00:aa:bb:cc, the same as master1, expected a MAC address no other node has"]),
    ({"product_uuid": "4c4c4544-0031"},
     ["master1: product_uuid: found 4c4c4544-0031, the same as worker1, expected a product_uuid no other node has",
      "worker1: product_uuid: found 4c4c4544-0031, the same as master1, expected a product_uuid no other node has"]),
    ({"machine_id": "cloned"},
     ["master1: machine-id: found cloned, the same as worker1, expected a machine-id no other node has",
      "worker1: machine-id: found cloned, the same as master1, expected a machine-id no other node has"]),
    ({"product_uuid": None}, []),
])
def test_duplicate_identities(facts, expected):
    answers = [answer("master1", **facts), answer("worker1", **facts)]
    assert lines(brine_preflight.cross_node_checks(answers, "master1")) == expected


@pytest.mark.parametrize("worker_time, flagged", [
    (1002.0 + 25, False),   # 25 s off: within the bound
    (1002.0 + 33, False),   # 33 s off, but the 4 s call window leaves room for 29 s: not certain
    (1002.0 + 40, True),    # at least 36 s off: certain
    (1002.0 - 40, True),
])
def test_clock_skew_is_reported_only_when_certain(worker_time, flagged):
    answers = [answer("master1"), answer("worker1", time_read=worker_time)]
    problems = brine_preflight.cross_node_checks(answers, "master1")
    assert bool(problems) is flagged
    if flagged:
        (problem,) = problems["worker1"]
        assert problem.check == "time skew"
        assert problem.found.startswith(f"{worker_time - 1002.0:+.1f} s against master1 (± 4.0 s)")


def test_clock_offset_is_an_interval_around_the_call():
    assert brine_preflight.clock_offset(answer("m", sent=100.0, received=103.0, time_read=160.0)) == (57.0, 60.0)


# --------------------------------------------------------------------------
# Requirements
# --------------------------------------------------------------------------


def test_a_node_with_several_roles_needs_the_most_of_each():
    need = brine_preflight.requirements_for(["master", "etcd"], 7443)
    assert (need["cpus"], need["memory_mib"], need["disk_mib"]) == (2, 1500, 4096)
    assert [(p["address"], p["port"]) for p in need["ports"]] == [
        (None, 7443), ("127.0.0.1", 8081), (None, 10250), (None, 10257), (None, 10259), (None, 2379), (None, 2380)]
    # the API port of a master: its API server (node address) and its load balancer (127.0.0.1)
    assert need["ports"][0]["owners"] == ["kube-apiserver", "nginx"]
    worker = brine_preflight.requirements_for(["worker"], 6443)
    assert (worker["cpus"], worker["memory_mib"]) == (1, 1024)
    assert [(p["address"], p["port"]) for p in worker["ports"]] == [
        (None, 10250), ("127.0.0.1", 6443), ("127.0.0.1", 8081)]


def test_overrides_are_checked():
    assert brine_preflight.check_overrides({"worker": {"memory_mib": 4096}}) == []
    assert brine_preflight.check_overrides({"wroker": {}, "master": {"ram": 1, "cpus": -1}, "etcd": 5}) == [
        "require.wroker: not a role (master, etcd, worker)",
        "require.master.ram: not a requirement (cpus, memory_mib, disk_mib)",
        "require.master.cpus: -1 is not a whole number >= 0",
        "require.etcd: 5 is not a mapping of cpus, memory_mib, disk_mib",
    ]


def test_os_state_and_preflight_agree_on_kernel_modules():
    with open(os.path.join(REPO_ROOT, "salt", "os_base", "defaults.yaml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)["os_base"]
    assert defaults["modules"]["always"] == list(brine_preflight.BASE_MODULES)
    assert defaults["modules"]["ipvs"] == list(brine_preflight.IPVS_MODULES)
    assert set(defaults["tolerate_readonly"]) <= set(defaults["sysctl"])
    assert all(brine_kernel.kernel_wide(key) for key in defaults["tolerate_readonly"])
