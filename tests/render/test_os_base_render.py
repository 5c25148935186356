"""
The node's base OS state (os_base), rendered for both kube-proxy modes of the
demo cluster: kernel modules now and at boot (the ip_vs family only in ipvs
mode), the sysctl file and the live settings with their tolerances, swap off,
/etc/hosts with every node, and packages from the offline repository
(ipvsadm only in ipvs mode). Nothing here connects to any machine.
"""

import os
import re

import brine_render
import pytest
import salt.config
import yaml

from tests.saltenv import REPO_ROOT, SaltEnv

BASE_MODULES = ["br_netfilter", "overlay"]
IPVS_MODULES = ["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"]
KERNEL_WIDE = {"net.netfilter.nf_conntrack_max", "fs.inotify.max_user_instances", "fs.inotify.max_user_watches",
               "vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"}


def rendered(tmp_path, mode):
    env = SaltEnv(str(tmp_path))

    def change(data):
        data["env"]["kube_proxy"] = {"mode": mode}

    env.edit("demo", "env.sls", change)
    assert env.salt_run("cluster.secrets", "demo").returncode == 0
    opts = salt.config.master_config(os.path.join(env.config_dir, "master"))
    files = {f.path: f.text for f in brine_render.render_states(opts, "worker1.demo", mods=["os_base"])}
    chunks = brine_render.low_chunks(opts, "worker1.demo", ["os_base"])
    return {"files": files, "chunks": chunks, "opts": opts}


@pytest.fixture(scope="module")
def iptables(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("iptables"), "iptables")


@pytest.fixture(scope="module")
def ipvs(tmp_path_factory):
    return rendered(tmp_path_factory.mktemp("ipvs"), "ipvs")


@pytest.fixture(scope="module")
def both(iptables, ipvs):
    return {"iptables": iptables, "ipvs": ipvs}


def chunks_of(render, state, fun):
    return [c for c in render["chunks"] if c["state"] == state and c["fun"] == fun]


def sysctl_file(render):
    lines = [line for line in render["files"]["/etc/sysctl.d/90-brine.conf"].splitlines() if line and not line.startswith("#")]
    return dict(line.split(" = ", 1) for line in lines)


@pytest.mark.parametrize("mode, modules", [("iptables", BASE_MODULES), ("ipvs", BASE_MODULES + IPVS_MODULES)])
def test_kernel_modules_now_and_at_boot(both, mode, modules):
    render = both[mode]
    persisted = [line for line in render["files"]["/etc/modules-load.d/brine.conf"].splitlines() if not line.startswith("#")]
    assert persisted == modules
    assert [c["name"] for c in chunks_of(render, "brine_kernel", "module_loaded")] == modules


@pytest.mark.parametrize("mode", ["iptables", "ipvs"])
def test_sysctl_file_and_live_settings(both, mode):
    render = both[mode]
    settings = sysctl_file(render)
    assert settings == {
        "net.ipv4.ip_forward": "1",
        "net.bridge.bridge-nf-call-iptables": "1",
        "net.bridge.bridge-nf-call-ip6tables": "1",
        "net.ipv4.ip_local_reserved_ports": "30000-32767",
        "net.netfilter.nf_conntrack_max": "1048576",
        "fs.inotify.max_user_instances": "8192",
        "fs.inotify.max_user_watches": "524288",
        "vm.overcommit_memory": "1",
        "kernel.panic": "10",
        "kernel.panic_on_oops": "1",
    }
    live = {c["name"]: c for c in chunks_of(render, "brine_kernel", "sysctl_present")}
    assert {name: str(c["value"]) for name, c in live.items()} == settings


def test_only_kernel_wide_entries_may_keep_the_hosts_value(iptables):
    live = {c["name"]: c for c in chunks_of(iptables, "brine_kernel", "sysctl_present")}
    tolerated = {name for name, c in live.items() if c.get("tolerate_readonly")}
    assert tolerated == KERNEL_WIDE
    for name in tolerated:
        assert len(live[name]["tolerate_readonly"]) > 40, name  # a reason, not a flag
    assert "tolerate_readonly" not in live["net.ipv4.ip_forward"]


@pytest.mark.parametrize("mode, packages", [
    ("iptables", ["conntrack", "ipset", "socat", "ethtool", "iptables", "ebtables"]),
    ("ipvs", ["conntrack", "ipset", "socat", "ethtool", "iptables", "ebtables", "ipvsadm"]),
])
def test_packages_from_the_offline_repository(both, mode, packages):
    (installed,) = chunks_of(both[mode], "pkg", "installed")
    assert installed["pkgs"] == packages
    assert installed["install_recommends"] is False
    assert {"sls": "offline_repo"} in installed["require"]
    sources = both[mode]["files"]["/etc/apt/sources.list.d/brine.list"]
    assert sources.splitlines()[-1] == "deb [trusted=yes] http://10.77.0.1:8080/lines/1.37/debs ./"


def test_every_node_is_in_etc_hosts(iptables):
    hosts = {c["name"]: c["ip"] for c in chunks_of(iptables, "host", "present")}
    assert hosts == {"master1": "10.77.0.11", "master2": "10.77.0.12", "master3": "10.77.0.13",
                     "worker1": "10.77.0.21", "worker2": "10.77.0.22"}
    assert all(c["clean"] is True for c in chunks_of(iptables, "host", "present"))


def test_swap_is_turned_off_and_out_of_fstab(iptables):
    assert [c["__id__"] for c in chunks_of(iptables, "brine_kernel", "swap_off")] == ["os-swap-off"]
    (fstab,) = chunks_of(iptables, "file", "replace")
    assert fstab["name"] == "/etc/fstab"
    pattern = re.compile(fstab["pattern"], re.M)
    text = "UUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n# /old none swap sw 0 0\n"
    assert pattern.sub(fstab["repl"].replace("\\1", r"\1"), text) == (
        "UUID=1 / ext4 defaults 0 1\n# brine: swap off for kubelet: /swapfile none swap sw 0 0\n# /old none swap sw 0 0\n")


@pytest.mark.parametrize("node", ["master1.demo", "worker1.demo"])
def test_the_highstate_of_masters_and_workers_includes_os_base(iptables, node):
    highstate = {f.path: f for f in brine_render.render_states(iptables["opts"], node)}
    assert highstate["/etc/sysctl.d/90-brine.conf"].sls == "os_base.configured"


def test_defaults_tolerate_only_what_they_set():
    with open(os.path.join(REPO_ROOT, "salt", "os_base", "defaults.yaml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle)["os_base"]
    assert set(defaults["tolerate_readonly"]) == KERNEL_WIDE


def test_clean_undoes_the_boot_settings_and_the_fstab_marks(iptables):
    chunks = brine_render.low_chunks(iptables["opts"], "worker1.demo", ["os_base.clean"])
    absent = sorted(c["name"] for c in chunks if (c["state"], c["fun"]) == ("file", "absent"))
    assert absent == ["/etc/modules-load.d/brine.conf", "/etc/sysctl.d/90-brine.conf"]
    (restore,) = [c for c in chunks if (c["state"], c["fun"]) == ("file", "replace")]
    text = "# brine: swap off for kubelet: /swapfile none swap sw 0 0\n"
    assert re.sub(restore["pattern"], restore["repl"].replace("\\1", r"\1"), text, flags=re.M) == \
        "/swapfile none swap sw 0 0\n"
