"""The testbed itself, on the real thing: the demo cluster booted as systemd-nspawn
containers on this machine, reached over SSH the way Brine's deploy side reaches it.

Needs root, debootstrap, systemd-container, nftables and OpenSSH; the first run builds
the cached root file system (about a minute). Run: ``pytest -m testbed tests/integration``.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.testbed import Testbed
from tests.testbed.network import cluster_links, cluster_netns
from tests.testbed.system import cluster_cgroups, mounts_under

pytestmark = [
    pytest.mark.testbed,
    pytest.mark.skipif(os.geteuid() != 0, reason="the testbed needs root"),
]

CLUSTER = "demo"


def ssh_options(tb: Testbed) -> list[str]:
    """Everything ssh needs, given on the command line (no ssh_config is read)."""
    return [
        "-F",
        "/dev/null",
        "-i",
        str(tb.ssh_key_path),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"UserKnownHostsFile={tb.known_hosts_path}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ConnectTimeout=3",
    ]


def via_jump(tb: Testbed, options: list[str]) -> list[str]:
    """Options that reach a node through the jump host with an explicit ProxyCommand."""
    hop = " ".join(["ssh", *options, "-W", "%h:%p", f"root@{tb.jump_address}"])
    return [*options, "-o", f"ProxyCommand={hop}"]


def ssh(argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def names(tb: Testbed) -> list[str]:
    return [str(node["name"]) for node in tb.nodes]


def other_nodes(tb: Testbed) -> list[dict[str, object]]:
    return [node for node in tb.nodes if node["name"] != tb.jump_host]


def test_nodes_have_their_own_identity(demo_testbed: Testbed) -> None:
    hostnames, machine_ids, fingerprints = {}, {}, {}
    for name in names(demo_testbed):
        hostnames[name] = demo_testbed.run(name, "hostname", check=True).stdout.strip()
        machine_ids[name] = demo_testbed.run(name, "cat /etc/machine-id", check=True).stdout.strip()
        fingerprints[name] = demo_testbed.run(
            name, "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub", check=True
        ).stdout.split()[1]
    assert hostnames == {name: name for name in names(demo_testbed)}
    assert all(re.fullmatch(r"[0-9a-f]{32}", machine_id) for machine_id in machine_ids.values())
    assert len(set(machine_ids.values())) == len(names(demo_testbed))
    assert len(set(fingerprints.values())) == len(names(demo_testbed))


def test_known_hosts_has_each_nodes_key(demo_testbed: Testbed) -> None:
    lines = demo_testbed.known_hosts_path.read_text().splitlines()
    by_address = {line.split()[0]: " ".join(line.split()[1:3]) for line in lines}
    for node in demo_testbed.nodes:
        offered = demo_testbed.run(str(node["name"]), "cat /etc/ssh/ssh_host_ed25519_key.pub", check=True).stdout
        assert by_address[node["address"]] == " ".join(offered.split()[:2])


def test_every_node_is_running(demo_testbed: Testbed) -> None:
    states = {name: demo_testbed.run(name, "systemctl is-system-running").stdout.strip() for name in names(demo_testbed)}
    assert states == dict.fromkeys(names(demo_testbed), "running")


def test_each_node_has_its_own_cgroup(demo_testbed: Testbed) -> None:
    for name in names(demo_testbed):
        cgroups = Path(f"/proc/{demo_testbed.pid1(name)}/cgroup").read_text()
        assert f":memory:/brine-testbed/{CLUSTER}/{name}\n" in cgroups


def test_nodes_see_the_kernel_settings_kubelet_needs_and_the_host_keeps_its_own(demo_testbed: Testbed) -> None:
    from tests.testbed.testbed import KUBELET_SYSCTLS

    host = {key: Path(f"/proc/sys/{key}").read_text().strip() for key in KUBELET_SYSCTLS}
    proc = demo_testbed.run("worker1", "for k in " + " ".join(KUBELET_SYSCTLS) + "; do cat /proc/sys/$k; done")
    assert proc.stdout.split() == list(KUBELET_SYSCTLS.values())
    assert {key: Path(f"/proc/sys/{key}").read_text().strip() for key in KUBELET_SYSCTLS} == host
    # the node cannot change the machine's values through them
    assert demo_testbed.run("worker1", "echo 0 > /proc/sys/vm/overcommit_memory").returncode != 0


def test_nodes_can_make_cgroups_in_every_controller(demo_testbed: Testbed) -> None:
    # nspawn mounts cgroup v1 controllers read-only; kubelet makes the pods' cgroups in each.
    # The node's cgroup namespace roots them at its own cgroup.
    proc = demo_testbed.run("worker1", "for c in memory cpu cpuacct pids blkio devices freezer cpuset; do "
                                       "mkdir /sys/fs/cgroup/$c/brine-probe && rmdir /sys/fs/cgroup/$c/brine-probe "
                                       "|| exit 1; done")
    assert proc.returncode == 0, proc.stderr


def test_ssh_to_the_jump_host_works(demo_testbed: Testbed) -> None:
    proc = ssh(["ssh", *ssh_options(demo_testbed), f"root@{demo_testbed.jump_address}", "hostname"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == demo_testbed.jump_host


def test_ssh_to_another_node_directly_fails(demo_testbed: Testbed) -> None:
    target = str(other_nodes(demo_testbed)[0]["name"])
    proc = ssh(["ssh", *ssh_options(demo_testbed), f"root@{demo_testbed.address(target)}", "hostname"])
    assert proc.returncode == 255
    assert re.search(r"timed out|refused", proc.stderr), proc.stderr


def test_ssh_through_the_jump_host_reaches_every_node(demo_testbed: Testbed) -> None:
    for node in other_nodes(demo_testbed):
        proc = ssh(["ssh", *via_jump(demo_testbed, ssh_options(demo_testbed)), f"root@{node['address']}", "hostname"])
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == node["name"]


def test_ssh_config_reaches_nodes_with_proxy_jump(demo_testbed: Testbed) -> None:
    node = other_nodes(demo_testbed)[-1]
    proc = ssh(demo_testbed.ssh_argv(str(node["name"]), "hostname"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == node["name"]


def test_a_wrong_host_key_is_refused(demo_testbed: Testbed, tmp_path: Path) -> None:
    first, second = other_nodes(demo_testbed)[:2]
    keys = {line.split()[0]: line.split(maxsplit=1)[1] for line in demo_testbed.known_hosts_path.read_text().splitlines()}
    keys[first["address"]] = keys[second["address"]]  # first's entry holds second's key
    forged = tmp_path / "known_hosts"
    forged.write_text("".join(f"{address} {key}\n" for address, key in keys.items()))
    options = [option.replace(str(demo_testbed.known_hosts_path), str(forged)) for option in ssh_options(demo_testbed)]
    proc = ssh(["ssh", *via_jump(demo_testbed, options), f"root@{first['address']}", "hostname"])
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


def test_nodes_reach_each_others_sshd(demo_testbed: Testbed) -> None:
    target = other_nodes(demo_testbed)[0]
    proc = demo_testbed.run(
        demo_testbed.jump_host, f"bash -c 'exec 3<>/dev/tcp/{target['address']}/22 && timeout 3 head -c 8 <&3'"
    )
    assert proc.stdout == "SSH-2.0-", proc.stderr


def test_there_is_no_route_out(demo_testbed: Testbed) -> None:
    for name in names(demo_testbed):
        proc = demo_testbed.run(name, "ip route get 1.1.1.1")
        assert proc.returncode != 0
        assert "unreachable" in proc.stderr
        assert demo_testbed.run(name, "ip route show default", check=True).stdout.strip() == ""


def test_there_is_no_name_server(demo_testbed: Testbed) -> None:
    for name in names(demo_testbed):
        resolv = demo_testbed.run(name, "cat /etc/resolv.conf", check=True).stdout
        assert "nameserver" not in resolv


def test_etc_hosts_lists_every_node(demo_testbed: Testbed) -> None:
    expected = {(str(node["address"]), str(node["name"])) for node in demo_testbed.nodes}
    for name in names(demo_testbed):
        hosts = demo_testbed.run(name, "cat /etc/hosts", check=True).stdout
        entries = {tuple(line.split()[:2]) for line in hosts.splitlines() if line and not line.startswith("#")}
        assert expected <= entries
        resolved = demo_testbed.run(name, "getent hosts " + " ".join(names(demo_testbed)), check=True).stdout
        assert {tuple(line.split()[:2]) for line in resolved.splitlines()} == expected


def test_sftp_and_scp_work_through_the_jump_host(demo_testbed: Testbed, tmp_path: Path) -> None:
    node = other_nodes(demo_testbed)[0]
    options = via_jump(demo_testbed, ssh_options(demo_testbed))
    upload = tmp_path / "upload.txt"
    upload.write_text("brine testbed sftp\n")
    batch = f"put {upload} /tmp/upload.txt\nget /tmp/upload.txt {tmp_path / 'back.txt'}\n"
    proc = subprocess.run(
        ["sftp", *options, "-b", "-", f"root@{node['address']}"], input=batch, capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "back.txt").read_text() == upload.read_text()
    proc = ssh(["scp", *options, f"root@{node['address']}:/etc/hostname", str(tmp_path / "hostname")])
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "hostname").read_text().strip() == node["name"]


def test_down_leaves_nothing_behind(demo_testbed: Testbed) -> None:
    """Runs last: takes the cluster down itself (the fixture's down is then a no-op)."""
    pid_namespaces = {os.readlink(f"/proc/{demo_testbed.pid1(name)}/ns/pid") for name in names(demo_testbed)}
    demo_testbed.down()
    assert cluster_netns(CLUSTER) == []
    assert cluster_links(CLUSTER) == []
    assert mounts_under(demo_testbed.state_dir) == []
    assert not demo_testbed.state_dir.exists()
    assert [path for path in cluster_cgroups(CLUSTER) if path.exists()] == []
    left = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") in pid_namespaces:
                    left.append(int(entry.name))
            except OSError:
                continue
    assert left == []
    nspawns = subprocess.run(
        ["pgrep", "-f", f"systemd-nspawn.*--machine=brt-{CLUSTER}[.]"], capture_output=True, text=True
    ).stdout.split()
    assert nspawns == []
    demo_testbed.down()  # idempotent
