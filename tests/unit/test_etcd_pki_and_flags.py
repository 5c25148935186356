"""
etcd's pieces that need no machine: the PKI made on the deploy side (names,
usages, chain, 0600 keys, made once and again only when stale), which machine
the ``brine`` external pillar gives which etcd secret (never the CA key), how
``etcdctl endpoint health`` is read, and the health gate's waiting.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

import brine_cluster
import brine_etcd
import brine_pki
import pytest
import salt.config
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.saltenv import REPO_ROOT

MEMBERS = {"master1": "10.77.0.11", "master2": "10.77.0.12", "master3": "10.77.0.13"}
SERVER, CLIENT = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH


def load(kind: str, name: str):
    spec = importlib.util.spec_from_file_location(f"{kind}_{name}", os.path.join(REPO_ROOT, kind, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sans(pair: brine_pki.KeyPair) -> set[str]:
    try:
        names = pair.cert().extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(n.value) for n in names}


def usages(pair: brine_pki.KeyPair) -> set:
    return set(pair.cert().extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def common_name(pair: brine_pki.KeyPair) -> str:
    return pair.cert().subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


@pytest.fixture
def pki(tmp_path):
    return brine_pki.ensure_etcd_pki(str(tmp_path / "etcd"), "demo", MEMBERS)


# --------------------------------------------------------------------------
# PKI
# --------------------------------------------------------------------------


def test_the_etcd_pki_is_made_once(pki, tmp_path):
    assert pki.made[0] == "etcd CA" and len(pki.made) == 1 + 2 * len(MEMBERS) + 2
    again = brine_pki.ensure_etcd_pki(str(tmp_path / "etcd"), "demo", MEMBERS)
    assert again.made == []


@pytest.mark.parametrize("member", list(MEMBERS))
def test_member_certificates_name_the_member(pki, member):
    server, peer = pki.servers[member], pki.peers[member]
    assert sans(server) == {member, MEMBERS[member], "127.0.0.1", "localhost"}
    assert sans(peer) == {member, MEMBERS[member]}
    assert common_name(server) == common_name(peer) == member
    # Peers dial each other, and a member's gateway dials itself: both usages.
    assert usages(server) == usages(peer) == {SERVER, CLIENT}


@pytest.mark.parametrize("name, cn", [("healthcheck-client", "kube-etcd-healthcheck-client"),
                                      ("apiserver-etcd-client", "kube-apiserver-etcd-client")])
def test_client_certificates(pki, name, cn):
    assert common_name(pki.clients[name]) == cn
    assert usages(pki.clients[name]) == {CLIENT}
    assert sans(pki.clients[name]) == set()


def test_every_certificate_is_signed_by_the_etcd_ca(pki):
    ca = pki.ca.cert()
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for pair in [*pki.servers.values(), *pki.peers.values(), *pki.clients.values()]:
        pair.cert().verify_directly_issued_by(ca)
        assert not pair.cert().extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_keys_are_0600_in_0700_folders(pki, tmp_path):
    for folder, _, names in os.walk(tmp_path / "etcd"):
        assert oct(os.stat(folder).st_mode & 0o777) == "0o700", folder
        for name in names:
            mode = oct(os.stat(os.path.join(folder, name)).st_mode & 0o777)
            assert mode == ("0o600" if name.endswith(".key") else "0o644"), (folder, name)


def test_a_moved_member_gets_new_certificates_and_only_it(pki, tmp_path):
    moved = {**MEMBERS, "master2": "10.77.0.22"}
    again = brine_pki.ensure_etcd_pki(str(tmp_path / "etcd"), "demo", moved)
    assert again.made == ["etcd server certificate of master2", "etcd peer certificate of master2"]
    assert "10.77.0.22" in sans(again.servers["master2"])


def test_a_new_ca_makes_every_certificate_again(pki, tmp_path):
    os.remove(pki.ca.cert_path)
    os.remove(pki.ca.key_path)
    again = brine_pki.ensure_etcd_pki(str(tmp_path / "etcd"), "demo", MEMBERS)
    assert len(again.made) == 1 + 2 * len(MEMBERS) + 2
    again.servers["master1"].cert().verify_directly_issued_by(again.ca.cert())


# --------------------------------------------------------------------------
# Who gets which secret
# --------------------------------------------------------------------------


@pytest.fixture
def ext_pillar(tmp_path):
    """The brine external pillar over a copy of the demo cluster, its secrets made."""
    shutil.copytree(os.path.join(REPO_ROOT, "pillar"), tmp_path / "pillar")
    inventory = tmp_path / "pillar" / "clusters" / "demo" / "inventory.sls"
    data = yaml.safe_load(inventory.read_text())
    # master3 a master but no etcd member; worker2 an etcd member but no master.
    data["inventory"]["nodes"][2]["roles"] = ["master"]
    data["inventory"]["nodes"][4]["roles"] = ["worker", "etcd"]
    inventory.write_text(yaml.safe_dump(data))
    opts = salt.config.master_config(os.path.join(REPO_ROOT, "etc", "salt", "master"))
    opts.update(brine_repo_root=REPO_ROOT, brine_state_dir=str(tmp_path / "state"),
                pillar_roots={"base": [str(tmp_path / "pillar")]},
                file_roots={"base": [os.path.join(REPO_ROOT, "salt")]})
    loaded = brine_cluster.load(opts, "demo")
    assert loaded.valid, loaded.problems
    runner = load("_runners", "cluster")
    runner.__opts__, runner.__context__ = opts, {}
    report = runner.secrets("demo")
    assert report["retcode"] == 0, report
    module = load("_pillar", "brine")
    module.__opts__ = opts

    def pillar_of(node):
        return module.ext_pillar(f"{node}.demo", {"env": loaded.pillar["env"], "inventory": loaded.pillar["inventory"]})

    pillar_of.pki = os.path.join(loaded.state_dir, "pki", "etcd")
    return pillar_of


def read(path):
    with open(path, encoding="ascii") as handle:
        return handle.read()


MEMBER_KEYS = {"ca_crt", "server_crt", "server_key", "peer_crt", "peer_key", "healthcheck_client_crt",
               "healthcheck_client_key"}
MASTER_KEYS = {"ca_crt", "apiserver_etcd_client_crt", "apiserver_etcd_client_key"}


@pytest.mark.parametrize("node, keys", [
    ("master1", MEMBER_KEYS | MASTER_KEYS),   # master and etcd member
    ("master3", MASTER_KEYS),                 # a master, not an etcd member
    ("worker2", MEMBER_KEYS),                 # an etcd member, not a master
    ("worker1", None),                        # neither
    ("deploy", None),
])
def test_each_machine_gets_only_its_etcd_secrets(ext_pillar, node, keys):
    secrets = ext_pillar(node)["brine_secrets"]
    if keys is None:
        assert "etcd" not in secrets
        return
    etcd = secrets["etcd"]
    assert set(etcd) == keys
    if "server_key" in etcd:
        assert etcd["server_key"] == read(os.path.join(ext_pillar.pki, node, "server.key"))
        assert etcd["peer_key"] == read(os.path.join(ext_pillar.pki, node, "peer.key"))


@pytest.mark.parametrize("node", ["master1", "master2", "master3", "worker1", "worker2", "deploy"])
def test_no_machine_gets_the_etcd_ca_key_or_another_members_key(ext_pillar, node):
    text = repr(ext_pillar(node))
    assert read(os.path.join(ext_pillar.pki, "ca.key")) not in text
    for member in ("master1", "master2", "worker2"):
        if member != node:
            assert read(os.path.join(ext_pillar.pki, member, "server.key")) not in text
            assert read(os.path.join(ext_pillar.pki, member, "peer.key")) not in text


# --------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------

URLS = ["https://10.77.0.11:2379", "https://10.77.0.12:2379", "https://10.77.0.13:2379"]
HEALTHY = ('[{"endpoint":"https://10.77.0.11:2379","health":true,"took":"9ms"},'
           '{"endpoint":"https://10.77.0.12:2379","health":true,"took":"8ms"},'
           '{"endpoint":"https://10.77.0.13:2379","health":true,"took":"7ms"}]')
ONE_DOWN = ('[{"endpoint":"https://10.77.0.11:2379","health":true,"took":"9ms"},'
            '{"endpoint":"https://10.77.0.12:2379","health":false,"took":"5s","error":"context deadline exceeded"},'
            '{"endpoint":"https://10.77.0.13:2379","health":true,"took":"7ms"}]')


@pytest.mark.parametrize("stdout, stderr, problems", [
    (HEALTHY, "", []),
    (ONE_DOWN, "Error: unhealthy cluster",
     ["https://10.77.0.12:2379: unhealthy: context deadline exceeded"]),
    (HEALTHY.replace("10.77.0.13", "10.77.0.99"), "",
     ["https://10.77.0.99:2379: a member the inventory does not list",
      "https://10.77.0.13:2379: not a member of the cluster"]),
    ("", "Error: dial tcp 127.0.0.1:2379: connect: connection refused",
     ["no answer from etcd: Error: dial tcp 127.0.0.1:2379: connect: connection refused"]),
    ("{not json", "", ["no answer from etcd: etcdctl printed nothing"]),
])
def test_health_is_read(stdout, stderr, problems):
    assert brine_etcd.parse_health(stdout, stderr).problems(URLS) == problems


def test_etcdctl_gets_its_settings_as_flags():
    argv = brine_etcd.etcdctl_argv(["https://a:2379", "https://b:2379"], "/ca", "/c", "/k", "endpoint", "health")
    assert argv == ["/usr/bin/etcdctl", "--endpoints=https://a:2379,https://b:2379", "--cacert=/ca", "--cert=/c",
                    "--key=/k", "--command-timeout=5s", "endpoint", "health"]
    assert brine_etcd.CLEAN_ENV == {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@pytest.fixture
def gate(monkeypatch):
    """The brine_etcd.healthy state with etcdctl's answers scripted."""
    states = load("_states", "brine_etcd")
    states.__opts__ = {"test": False}
    answers = []

    def health(cacert, cert, key, endpoint):
        stdout, stderr = answers.pop(0) if len(answers) > 1 else answers[0]
        checked = brine_etcd.parse_health(stdout, stderr)
        return {"healthy": checked.healthy_endpoints(), "endpoints": checked.endpoints, "error": checked.error}

    states.__salt__ = {"brine_etcd.health": health}
    monkeypatch.setattr(states.time, "sleep", lambda seconds: None)
    states.answers = answers
    return states


def run_gate(gate, *answers, timeout=10):
    gate.answers[:] = list(answers)
    return gate.healthy("etcd-cluster-healthy", URLS, "/ca", "/c", "/k", timeout=timeout, interval=0)


def test_the_gate_passes_without_changes(gate):
    ret = run_gate(gate, (HEALTHY, ""))
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"].startswith("etcd: 3/3 members healthy after ")


def test_the_gate_waits_for_a_member(gate):
    ret = run_gate(gate, (ONE_DOWN, ""), (ONE_DOWN, ""), (HEALTHY, ""))
    assert ret["result"] is True and gate.answers == [(HEALTHY, "")]


def test_the_gate_gives_up_naming_the_member(gate, monkeypatch):
    clock = iter(range(0, 1000, 3))
    monkeypatch.setattr(gate.time, "monotonic", lambda: next(clock))
    ret = run_gate(gate, (ONE_DOWN, ""), timeout=10)
    assert ret["result"] is False and ret["changes"] == {}
    assert "etcd: 2/3 members healthy after" in ret["comment"]
    assert ret["comment"].endswith("https://10.77.0.12:2379: unhealthy: context deadline exceeded")


def test_the_gate_predicts_in_test_mode(gate):
    gate.__opts__["test"] = True
    ret = run_gate(gate, ("", "connection refused"))
    assert ret["result"] is None and "would wait up to 10 s" in ret["comment"]


@pytest.mark.parametrize("snapshot", ["../../etc/shadow", "backups/etcd.db", "etcd x.db", "/var/lib/../../x"])
def test_a_restore_refuses_what_is_not_a_snapshot_name_before_contacting_anyone(tmp_path, snapshot):
    opts = salt.config.master_config(os.path.join(REPO_ROOT, "etc", "salt", "master"))
    opts.update(brine_repo_root=REPO_ROOT, brine_state_dir=str(tmp_path / "state"),
                pillar_roots={"base": [os.path.join(REPO_ROOT, "pillar")]},
                file_roots={"base": [os.path.join(REPO_ROOT, "salt")]})
    runner = load("_runners", "cluster")
    runner.__opts__, runner.__context__ = opts, {}
    report = runner.etcd_snapshot_stage("demo", snapshot=snapshot)
    assert report["retcode"] == 1
    assert report["lines"] == [f"snapshot: {snapshot!r} is not a snapshot file name (a name in /var/lib/etcd-backup "
                               "such as etcd-20250101T060000Z.db, or an absolute path); no member was contacted"]
    assert not (tmp_path / "state").exists()
