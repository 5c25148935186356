"""
The brine_kernel states on fake /proc trees: a sysctl is set when the node may
set it, and otherwise the state says what it found and wanted, passing only
when the value already holds or the SLS tolerates the host's value with a
reason. Kernel-wide settings of a node sharing its host's kernel are never
written, modules never loaded, swap never turned off from the node.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess

import brine_kernel
import pytest

from tests.saltenv import REPO_ROOT


@pytest.fixture
def tree(tmp_path, monkeypatch):
    paths = brine_kernel.KernelPaths.under(str(tmp_path))
    monkeypatch.setattr(brine_kernel, "KernelPaths", lambda: paths)
    monkeypatch.setattr(brine_kernel.KernelPaths, "under", staticmethod(lambda root: paths), raising=False)
    return tmp_path


@pytest.fixture
def states(tree, monkeypatch):
    spec = importlib.util.spec_from_file_location("brine_kernel_states", os.path.join(REPO_ROOT, "_states", "brine_kernel.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = {"test": False}
    return module


def put(tree, relative, text):
    path = tree / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def sysctl(tree, key, value):
    return put(tree, "proc/sys/" + key.replace(".", "/"), f"{value}\n")


def in_container(tree):
    put(tree, "run/systemd/container", "systemd-nspawn\n")


def read_only(monkeypatch, *keys):
    """Make these entries refuse writes as a read-only /proc/sys does."""
    real_write, real_writable = brine_kernel.write_sysctl, brine_kernel.sysctl_writable

    def write(key, value, paths=None):
        if key in keys:
            raise brine_kernel.ReadOnlySysctl(30, f"/proc/sys/{key}: Read-only file system")
        real_write(key, value, paths)

    monkeypatch.setattr(brine_kernel, "write_sysctl", write)
    monkeypatch.setattr(brine_kernel, "sysctl_writable", lambda key, paths=None: key not in keys and real_writable(key, paths))


# --------------------------------------------------------------------------
# sysctl_present
# --------------------------------------------------------------------------


def test_a_value_already_in_place_changes_nothing(tree, states):
    sysctl(tree, "net.ipv4.ip_forward", 1)
    ret = states.sysctl_present("net.ipv4.ip_forward", 1)
    assert (ret["result"], ret["changes"], ret["comment"]) == (True, {}, "net.ipv4.ip_forward = 1")


def test_whitespace_is_compared_as_the_kernel_prints_it(tree, states):
    sysctl(tree, "net.ipv4.tcp_rmem", "4096\t87380\t6291456")
    assert states.sysctl_present("net.ipv4.tcp_rmem", "4096 87380 6291456")["changes"] == {}


def test_a_writable_entry_is_set(tree, states):
    path = sysctl(tree, "net.ipv4.ip_local_reserved_ports", "")
    ret = states.sysctl_present("net.ipv4.ip_local_reserved_ports", "30000-32767")
    assert ret["result"] is True
    assert ret["changes"] == {"old": "", "new": "30000-32767"}
    assert path.read_text() == "30000-32767"


def test_test_mode_predicts_and_writes_nothing(tree, states):
    path = sysctl(tree, "net.ipv4.ip_forward", 0)
    states.__opts__["test"] = True
    ret = states.sysctl_present("net.ipv4.ip_forward", 1)
    assert (ret["result"], ret["changes"]) == (None, {"old": "0", "new": "1"})
    assert path.read_text() == "0\n"


def test_an_own_netns_entry_that_is_read_only_fails(tree, states, monkeypatch):
    sysctl(tree, "net.ipv4.ip_forward", 0)
    read_only(monkeypatch, "net.ipv4.ip_forward")
    ret = states.sysctl_present("net.ipv4.ip_forward", 1)
    assert ret["result"] is False
    assert ret["comment"].startswith("net.ipv4.ip_forward: read-only here (a setting of the node's own network "
                                     "namespace, yet not writable here): found 0, wanted 1")


def test_a_read_only_kernel_wide_entry_fails_without_a_reason(tree, states, monkeypatch):
    sysctl(tree, "kernel.panic", 1)
    read_only(monkeypatch, "kernel.panic")
    ret = states.sysctl_present("kernel.panic", 10)
    assert ret["result"] is False
    assert ret["comment"].startswith("kernel.panic: read-only here (kernel-wide, owned by the host): found 1, wanted 10")
    assert ret["changes"] == {}


def test_a_read_only_kernel_wide_entry_passes_when_tolerated_and_says_so(tree, states, monkeypatch):
    sysctl(tree, "kernel.panic", 1)
    in_container(tree)
    read_only(monkeypatch, "kernel.panic")
    ret = states.sysctl_present("kernel.panic", 10, tolerate_readonly="the host's policy")
    assert ret["result"] is True
    assert ret["changes"] == {}
    assert ret["comment"] == ("kernel.panic: read-only here (kernel-wide, owned by the host): found 1, wanted 10; "
                              "kept: the host's policy")
    assert ret["warnings"] == ["kernel.panic: read-only here (kernel-wide, owned by the host): found 1, wanted 10"]


def test_a_kernel_wide_entry_of_a_container_is_never_written_even_when_writable(tree, states):
    path = sysctl(tree, "vm.overcommit_memory", 0)
    in_container(tree)
    ret = states.sysctl_present("vm.overcommit_memory", 1)
    assert ret["result"] is False
    assert "kernel-wide, owned by the host (this node is a systemd-nspawn container: not written from here)" in ret["comment"]
    assert path.read_text() == "0\n"


def test_a_container_still_sets_its_own_netns_entries(tree, states):
    path = sysctl(tree, "net.ipv4.ip_forward", 0)
    in_container(tree)
    assert states.sysctl_present("net.ipv4.ip_forward", 1)["changes"] == {"old": "0", "new": "1"}
    assert path.read_text() == "1"


def test_the_conntrack_table_size_counts_as_kernel_wide(tree, states):
    path = sysctl(tree, "net.netfilter.nf_conntrack_max", 262144)
    in_container(tree)
    ret = states.sysctl_present("net.netfilter.nf_conntrack_max", 1048576, tolerate_readonly="shared table")
    assert ret["result"] is True and ret["changes"] == {}
    assert path.read_text() == "262144\n"


def test_a_missing_entry_fails(tree, states):
    ret = states.sysctl_present("net.bridge.bridge-nf-call-iptables", 1)
    assert ret["result"] is False
    assert "no such entry" in ret["comment"]


# --------------------------------------------------------------------------
# module_loaded
# --------------------------------------------------------------------------


def test_a_built_in_module_is_fine(tree, states):
    (tree / "sys/module/overlay").mkdir(parents=True)
    ret = states.module_loaded("overlay")
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"].startswith("overlay: built in")


def test_a_container_never_loads_a_module_into_its_hosts_kernel(tree, states, monkeypatch):
    put(tree, "proc/modules", "")
    in_container(tree)
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls.append(a) or subprocess.CompletedProcess(a, 0, "", ""))
    ret = states.module_loaded("ip_vs")
    assert ret["result"] is False
    assert ret["comment"].endswith("so it is never loaded from here: load it on the host")
    assert not any(args and args[0][0] == "modprobe" and "-n" not in args[0] for args in calls)


def test_a_loadable_module_is_loaded(tree, states, monkeypatch):
    modules = put(tree, "proc/modules", "")

    def run(argv, **kwargs):
        if argv[:2] == ["modprobe", "-n"]:
            return subprocess.CompletedProcess(argv, 0, "", "")
        modules.write_text("ip_vs 200000 0 - Live 0x0\n")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    ret = states.module_loaded("ip_vs")
    assert (ret["result"], ret["changes"]) == (True, {"loaded": "ip_vs"})


def test_a_missing_module_fails_with_the_reason(tree, states):
    ret = states.module_loaded("ip_vs")
    assert ret["result"] is False
    assert ret["comment"].startswith("ip_vs: not loaded, not built in: this kernel cannot load modules")


# --------------------------------------------------------------------------
# swap_off
# --------------------------------------------------------------------------

SWAPS = "Filename\tType\tSize\tUsed\tPriority\n/dev/vda3 partition 2097148 0 -2\n"


def test_no_swap_is_fine(tree, states):
    put(tree, "proc/swaps", SWAPS.splitlines()[0] + "\n")
    assert states.swap_off("os-swap-off")["result"] is True


def test_swap_of_a_container_is_the_hosts_and_never_turned_off(tree, states, monkeypatch):
    put(tree, "proc/swaps", SWAPS)
    in_container(tree)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("swapoff called"))
    ret = states.swap_off("os-swap-off")
    assert ret["result"] is False
    assert ret["comment"].endswith("whose swap it is: turn it off on the host")


def test_swap_is_turned_off(tree, states, monkeypatch):
    swaps = put(tree, "proc/swaps", SWAPS)

    def run(argv, **kwargs):
        assert argv == ["swapoff", "/dev/vda3"]
        swaps.write_text(SWAPS.splitlines()[0] + "\n")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", run)
    ret = states.swap_off("os-swap-off")
    assert (ret["result"], ret["changes"]) == (True, {"off": ["/dev/vda3"]})
