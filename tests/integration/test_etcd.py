"""
etcd for real on a test cluster of its own (``etcdt`` on 10.79.0.0/24: three
masters that are the etcd members, one worker), deployed by ``cluster.deploy``:
three members healthy over TLS, a client without a certificate refused, writes
surviving a ``kill -9`` of one member which systemd restarts and which rejoins,
snapshots on a timer with retention, ``cluster.etcd_restore`` bringing back
what a snapshot held and dropping what came after, a second deploy changing
nothing in the etcd step, keys 0600 and the etcd CA key on no machine.

Figures (step times, rejoin time, restore time) are printed: run with ``-s``.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
import yaml

from tests.clusters import TestCluster
from tests.saltenv import REPO_ROOT, SaltEnv

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

NAME = "etcdt"
MEMBERS = {"master1": "10.79.0.11", "master2": "10.79.0.12", "master3": "10.79.0.13"}
CLIENT_URLS = sorted(f"https://{address}:2379" for address in MEMBERS.values())
PKI = "/etc/etcd/pki"
ETCDCTL = (f"env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin etcdctl --cacert={PKI}/ca.crt "
           f"--cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key")
LOCAL = "https://127.0.0.1:2379"
with open(os.path.join(REPO_ROOT, "salt", "etcd", "defaults.yaml"), encoding="utf-8") as _handle:
    DEFAULTS = yaml.safe_load(_handle)["etcd"]
BACKUP_DIR = DEFAULTS["backup"]["dir"]
BACKUP_SERVICE = DEFAULTS["backup"]["unit"] + ".service"
FIGURES: dict[str, str] = {}


def etcdctl(endpoints: str, *args: str) -> str:
    return f"{ETCDCTL} --endpoints={endpoints} {' '.join(args)}"


def orchestrate(env: SaltEnv, sls: str, pillar: dict, timeout: int = 3600) -> tuple[int, dict[str, dict]]:
    """Run an orchestrate; return its exit code and each step's result by state id."""
    proc = env.salt_run("state.orchestrate", sls, f"pillar={json.dumps(pillar)}", "--out=json", timeout=timeout)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"{sls}: no JSON result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    steps = {}
    for host in (data.get("data") or {}).values():
        if isinstance(host, dict):
            steps.update({step["__id__"]: step for step in host.values() if isinstance(step, dict) and "__id__" in step})
    if not steps:
        pytest.fail(f"{sls}: no steps ran (exit {proc.returncode}): {json.dumps(data)[:3000]}")
    return proc.returncode, steps


def failed(steps: dict[str, dict]) -> str:
    return "\n".join(f"{sid}: {step['comment'][:1500]}" for sid, step in steps.items() if step["result"] is not True)


def figure(name: str, value: str) -> None:
    FIGURES[name] = value
    print(f"FIGURE {name}: {value}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, offline_bundle):
    """etcdt up on the testbed and deployed by cluster.deploy, down at the end of the module."""
    env = SaltEnv(str(tmp_path_factory.mktemp("etcd")))
    test_cluster = TestCluster(env, NAME, third_octet=79, masters=3, workers=1)
    try:
        test_cluster.up()
        _, steps = orchestrate(env, "cluster.deploy", {"cluster": NAME, "until": "etcd"})
        step = steps.get("cluster-etcd-healthy")
        assert step and step["result"] is True, f"the etcd step did not pass; steps that did not:\n{failed(steps)}"
        figure("etcd step, first run, 3 members", f"{step['duration'] / 1000:.1f} s")
        yield test_cluster
    finally:
        print("\n".join(f"FIGURE {name}: {value}" for name, value in FIGURES.items()))
        test_cluster.down()


def on(cluster: TestCluster, node: str, command: str, timeout: float = 120):
    return cluster.testbed.run(node, command, timeout=timeout)


def health(cluster: TestCluster, node: str, endpoint: str = LOCAL) -> dict[str, dict]:
    proc = on(cluster, node, etcdctl(endpoint, "endpoint", "health", "--cluster", "-w", "json"))
    start = proc.stdout.find("[")
    return {item["endpoint"]: item for item in json.loads(proc.stdout[start:])} if start >= 0 else {}


def all_healthy(cluster: TestCluster, node: str) -> bool:
    found = health(cluster, node)
    return sorted(found) == CLIENT_URLS and all(item["health"] is True for item in found.values())


def snapshots(cluster: TestCluster, node: str) -> list[str]:
    proc = on(cluster, node, f"find {BACKUP_DIR} -maxdepth 1 -name 'etcd-*.db' -printf '%f\\n'")
    return sorted(proc.stdout.split())


def take_snapshot(cluster: TestCluster, node: str) -> str:
    """Run the backup service once; return the snapshot it made (names carry the second: wait for the next one)."""
    before = set(snapshots(cluster, node))
    time.sleep(1.1)
    proc = on(cluster, node, f"systemctl start {BACKUP_SERVICE}")
    assert proc.returncode == 0, proc.stderr + on(cluster, node, f"journalctl -u {BACKUP_SERVICE} -n 20").stdout
    new = sorted(set(snapshots(cluster, node)) - before)
    assert len(new) == 1, (before, new)
    return new[0]


def test_three_members_healthy_over_tls(cluster):
    found = health(cluster, "master1", endpoint="https://10.79.0.11:2379")
    assert sorted(found) == CLIENT_URLS
    assert all(item["health"] is True for item in found.values()), found
    members = json.loads(on(cluster, "master2", etcdctl(LOCAL, "member", "list", "-w", "json")).stdout)["members"]
    assert sorted((m["name"], m["peerURLs"][0], m["clientURLs"]) for m in members) == [
        (name, f"https://{address}:2380", [f"https://{address}:2379"]) for name, address in sorted(MEMBERS.items())]


def test_the_packaged_defaults_never_ran(cluster):
    for node in MEMBERS:
        # Debian's own start would have made a single-member cluster in /var/lib/etcd/default.
        assert on(cluster, node, "ls /var/lib/etcd").stdout.split() == ["member"]
        environment = on(cluster, node, "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value etcd)/environ")
        assert not [line for line in environment.stdout.splitlines() if line.startswith(("ETCD_", "ETCDCTL_"))]


def test_a_client_without_a_certificate_is_refused(cluster):
    url = "https://10.79.0.11:2379/health"
    # TLS 1.2: the handshake itself fails with the server's alert.
    refused = on(cluster, "master2", f"curl -sS --tls-max 1.2 --cacert {PKI}/ca.crt {url}")
    assert refused.returncode == 35 and "alert bad certificate" in refused.stderr, refused.stderr
    # TLS 1.3 (curl's default): the server's alert comes after curl's handshake ends, and
    # curl reports it or the closed connection, whichever it reads first; never an answer.
    refused = on(cluster, "master2", f"curl -sS --cacert {PKI}/ca.crt {url}")
    assert refused.returncode != 0 and refused.stdout == "", refused.stderr
    # The same request with the health-check client certificate is answered.
    answered = on(cluster, "master2", f"curl -sS --cacert {PKI}/ca.crt --cert {PKI}/healthcheck-client.crt "
                                      f"--key {PKI}/healthcheck-client.key {url}")
    assert answered.returncode == 0 and json.loads(answered.stdout) == {"health": "true"}, answered.stderr
    # A machine that is not a member, trusting any server, is refused as well.
    refused = on(cluster, "worker1", f"curl -sS -k --tls-max 1.2 {url}")
    assert refused.returncode == 35 and "alert bad certificate" in refused.stderr, refused.stderr
    # etcd logs each refusal.
    log = on(cluster, "master1", "journalctl -u etcd --no-pager -o cat | grep -c \"client didn't provide a certificate\"")
    assert int(log.stdout.strip() or 0) >= 3, log.stdout


def test_writes_survive_kill_9_of_a_member_which_rejoins(cluster):
    show = "systemctl show -p MainPID --value etcd; systemctl show -p NRestarts --value etcd"
    pid, restarts = map(int, on(cluster, "master2", show).stdout.split())
    assert on(cluster, "master2", f"kill -9 {pid}").returncode == 0
    killed = time.monotonic()
    # Down, and systemd about to start it again (Restart=on-failure).
    assert on(cluster, "master2", "systemctl is-active etcd").stdout.strip() in ("activating", "failed")
    others = "https://10.79.0.11:2379,https://10.79.0.13:2379"
    # If master2 led, the other two elect a leader first (election timeout 1 s, longer on a
    # loaded machine): a client retries meanwhile, as every etcd client does.
    while True:
        put = on(cluster, "master1", etcdctl(others, "--command-timeout=3s", "put", "brine-test/while-one-is-down",
                                             "written"))
        if put.returncode == 0 or time.monotonic() > killed + 30:
            break
        time.sleep(0.5)
    assert put.returncode == 0 and put.stdout.strip() == "OK", put.stderr
    written = time.monotonic() - killed
    got = on(cluster, "master3", etcdctl("https://10.79.0.13:2379", "get", "brine-test/while-one-is-down",
                                         "--print-value-only"))
    assert got.stdout.strip() == "written", got.stderr
    deadline = killed + 90
    while not all_healthy(cluster, "master2"):
        assert time.monotonic() < deadline, on(cluster, "master2", "journalctl -u etcd -n 30 --no-pager").stdout
        time.sleep(0.5)
    rejoined = time.monotonic() - killed
    new_pid, new_restarts = map(int, on(cluster, "master2", show).stdout.split())
    assert new_pid != pid and new_restarts == restarts + 1
    # What was written while it was down is in its own copy (a local, serializable read).
    local = on(cluster, "master2", etcdctl(LOCAL, "get", "brine-test/while-one-is-down", "--consistency=s",
                                           "--print-value-only"))
    assert local.stdout.strip() == "written"
    figure("kill -9 of one member: first write through the other two after", f"{written:.1f} s")
    figure("kill -9 of one member: 3/3 healthy again after", f"{rejoined:.1f} s (RestartSec=5s included)")


def test_the_backup_timer_is_active(cluster):
    for node in MEMBERS:
        timer = DEFAULTS["backup"]["unit"] + ".timer"
        assert on(cluster, node, f"systemctl is-active {timer}; systemctl is-enabled {timer}").stdout.split() == \
            ["active", "enabled"]


def test_the_backup_service_takes_a_snapshot(cluster):
    put = on(cluster, "master1", etcdctl(LOCAL, "put", "brine-test/in-the-snapshot", "kept"))
    assert put.returncode == 0, put.stderr
    name = take_snapshot(cluster, "master1")
    assert re.fullmatch(r"etcd-\d{8}T\d{6}Z\.db", name)
    path = f"{BACKUP_DIR}/{name}"
    assert on(cluster, "master1", f"stat -c '%a %U' {path}").stdout.split() == ["600", "etcd"]
    status = json.loads(on(cluster, "master1", f"env -i /usr/bin/etcdctl snapshot status {path} -w json").stdout)
    assert status["totalKey"] > 0 and status["revision"] > 0


def test_backup_retention_keeps_the_newest(cluster):
    keep = DEFAULTS["backup"]["keep"]
    made = [take_snapshot(cluster, "master3") for _ in range(keep + 2)]
    assert snapshots(cluster, "master3") == sorted(made)[-keep:]
    figure("backup retention", f"{keep + 2} snapshots taken, the newest {keep} kept")


def test_restore_brings_back_the_snapshot_and_drops_what_came_after(cluster):
    env = cluster.env
    assert on(cluster, "master1", etcdctl(LOCAL, "put", "brine-test/before", "kept")).returncode == 0
    snapshot = take_snapshot(cluster, "master2")  # the newest snapshot of any member
    assert on(cluster, "master3", etcdctl(LOCAL, "put", "brine-test/after", "lost")).returncode == 0
    started = time.monotonic()
    code, steps = orchestrate(env, "cluster.etcd_restore", {"cluster": NAME})
    took = time.monotonic() - started
    assert code == 0, failed(steps)
    assert all(step["result"] is True for step in steps.values()), failed(steps)
    assert f"{BACKUP_DIR}/{snapshot} on master2" in steps["etcd-restore-snapshot-staged"]["comment"]
    for node in MEMBERS:
        assert on(cluster, node, etcdctl(LOCAL, "get", "brine-test/before", "--print-value-only")).stdout.strip() == "kept"
        assert on(cluster, node, etcdctl(LOCAL, "get", "brine-test/after", "--consistency=s")).stdout.strip() == ""
        assert on(cluster, node, "ls -d /var/lib/etcd.before-restore-*").stdout.strip(), "the old data dir is kept aside"
    assert all_healthy(cluster, "master3")
    figure("restore orchestrate (stage, stop, restore, start, health gate)", f"{took:.1f} s")
    figure("restore: steps", ", ".join(f"{sid} {step['duration'] / 1000:.1f} s" for sid, step in steps.items()))


def test_restoring_a_snapshot_no_member_has_touches_nothing(cluster):
    pids = {node: on(cluster, node, "systemctl show -p MainPID --value etcd").stdout.strip() for node in MEMBERS}
    code, steps = orchestrate(cluster.env, "cluster.etcd_restore",
                              {"cluster": NAME, "snapshot": "etcd-19700101T000000Z.db"})
    assert code != 0
    assert steps["etcd-restore-snapshot-staged"]["result"] is False
    assert "no member has /var/lib/etcd-backup/etcd-19700101T000000Z.db" in steps["etcd-restore-snapshot-staged"]["comment"]
    assert steps["etcd-restore-members-restored"]["result"] is False
    assert "requisite failed" in steps["etcd-restore-members-restored"]["comment"]
    assert {node: on(cluster, node, "systemctl show -p MainPID --value etcd").stdout.strip() for node in MEMBERS} == pids


def test_a_second_deploy_changes_nothing_in_the_etcd_step(cluster):
    _, steps = orchestrate(cluster.env, "cluster.deploy", {"cluster": NAME, "until": "etcd"})
    step = steps["cluster-etcd-healthy"]
    assert step["result"] is True, step["comment"]
    assert step["changes"] == {}, json.dumps(step["changes"])[:3000]
    assert "No changes made to" in step["comment"]
    figure("etcd step, second run, 3 members", f"{step['duration'] / 1000:.1f} s, no changes")


def test_keys_are_0600_and_the_etcd_ca_key_is_on_no_machine(cluster):
    for node in MEMBERS:
        listing = on(cluster, node, f"stat -c '%a %U %G %n' {PKI}/* {PKI}").stdout.splitlines()
        assert sorted(line.rsplit("/", 1)[-1] for line in listing) == sorted(
            ["pki", *DEFAULTS["pki_files"]]), listing
        assert all(line.startswith("600 etcd etcd ") for line in listing if not line.endswith(PKI)), listing
        assert f"700 etcd etcd {PKI}" in listing
    pki = os.path.join(cluster.env.state, "clusters", NAME, "pki", "etcd")

    def body(path: str) -> str:
        """The longest base64 line of a PEM file: enough to find its copies."""
        with open(path, encoding="ascii") as handle:
            return max((line for line in handle.read().splitlines() if not line.startswith("-----")), key=len)

    assert oct(os.stat(os.path.join(pki, "ca.key")).st_mode & 0o777) == "0o600"
    secrets = {"etcd CA key": body(os.path.join(pki, "ca.key")),
               "API server client key": body(os.path.join(pki, "apiserver-etcd-client.key"))}
    secrets.update({f"{member} server key": body(os.path.join(pki, member, "server.key")) for member in MEMBERS})
    patterns = " ".join(f"-e {value}" for value in secrets.values())
    for node in [*MEMBERS, "worker1", "deploy"]:
        found = on(cluster, node, f"grep -rlF {patterns} / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev "
                                  "2>/dev/null; true", timeout=600).stdout.split()
        holding = {what for what, value in secrets.items()
                   if value in on(cluster, node, f"cat {' '.join(found)} 2>/dev/null").stdout} if found else set()
        expected = {f"{node} server key"} if node in MEMBERS else set()
        assert holding == expected, f"{node} holds {sorted(holding)} in {found}"


def test_a_member_removed_through_its_own_endpoint_is_reported_removed(cluster):
    """``brine_etcd.member_remove`` given only the leaving member's URL: the member
    would stop before answering ("server stopped"), so the removal must be asked of
    the members that stay. Last in the module: it leaves two members."""
    proc = cluster.env.salt_ssh(
        cluster.minion("master1"), "brine_etcd.member_remove", "master3", f"{PKI}/ca.crt",
        f"{PKI}/healthcheck-client.crt", f"{PKI}/healthcheck-client.key", f"https://{MEMBERS['master3']}:2379",
        "--out=json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "master3: removed from etcd" in proc.stdout, proc.stdout
    members = json.loads(on(cluster, "master1", etcdctl(LOCAL, "member", "list", "-w", "json")).stdout)["members"]
    assert sorted(m["name"] for m in members) == ["master1", "master2"]
    again = cluster.env.salt_ssh(
        cluster.minion("master1"), "brine_etcd.member_remove", "master3", f"{PKI}/ca.crt",
        f"{PKI}/healthcheck-client.crt", f"{PKI}/healthcheck-client.key", LOCAL, "--out=json")
    assert again.returncode == 0 and "already removed" in again.stdout, again.stdout
