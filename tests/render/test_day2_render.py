"""
The day-2 agent as Brine's states would write it for the demo cluster,
rendered on the deploy side: every minion names every master and pins their
key, the masters accept exactly the inventory's deployed keys, serve this
cluster's pillar only, react to onboarding, and the payload carries Brine as a
checkout. Nothing here connects to any machine.
"""

import hashlib
import io
import json
import os
import shutil
import tarfile

import brine_agent_archive
import brine_day2
import brine_manifest
import brine_pki
import brine_render
import pytest
import salt.config
import salt.utils.crypt
import yaml

from tests.saltenv import REPO_ROOT, SaltEnv

MASTERS = ["10.77.0.11", "10.77.0.12", "10.77.0.13"]
NODES = ["master1", "master2", "master3", "worker1", "worker2"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("day2")))
    assert salt_env.salt_run("cluster.secrets", "demo").returncode == 0
    return salt_env


@pytest.fixture(scope="module")
def opts(env):
    return salt.config.master_config(os.path.join(env.config_dir, "master"))


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def files_of(opts, minion_id, mods=None):
    return {f.path: f for f in brine_render.render_states(opts, minion_id, mods=mods)}


@pytest.fixture(scope="module")
def worker(opts):
    return files_of(opts, "worker1.demo")


@pytest.fixture(scope="module")
def master(opts):
    return files_of(opts, "master1.demo")


def test_every_minion_names_every_master_and_pins_their_key(env, worker, master):
    master_pub = os.path.join(env.state, "clusters", "demo", "pki", "salt", "master.pub")
    for files, node in ((worker, "worker1"), (master, "master1")):
        config = yaml.safe_load(files["/etc/salt/minion.d/brine.conf"].text)
        assert config["id"] == f"{node}.demo"
        assert config["master"] == MASTERS
        assert config["master_finger"] == salt.utils.crypt.pem_finger(path=master_pub, sum_type="sha256")
        assert files["/etc/salt/pki/minion/minion_master.pub"].text == read(master_pub)


def test_each_node_gets_its_own_minion_key_and_no_master_key(env, worker):
    pki = os.path.join(env.state, "clusters", "demo", "pki", "salt", "minions")
    assert worker["/etc/salt/pki/minion/minion.pem"].text == read(os.path.join(pki, "worker1.pem"))
    assert "/etc/salt/pki/master/master.pem" not in worker
    assert not any(path.startswith("/srv/brine") for path in worker)


def test_drift_schedule_follows_env(worker):
    schedule = yaml.safe_load(worker["/etc/salt/minion.d/brine.conf"].text)["schedule"]["brine-highstate"]
    assert schedule["function"] == "brine_drift.highstate"
    assert schedule["minutes"] == 30
    assert schedule["kwargs"] == {"test": False, "min_gap": 60}
    assert schedule["maxrunning"] == 1


def test_masters_accept_exactly_the_inventory_keys_and_never_auto_accept(env, master):
    pki = os.path.join(env.state, "clusters", "demo", "pki", "salt", "minions")
    accepted = {path.rsplit("/", 1)[1]: f.text for path, f in master.items()
                if path.startswith("/etc/salt/pki/master/minions/")}
    assert accepted == {f"{n}.demo": read(os.path.join(pki, f"{n}.pub")) for n in NODES}
    config = yaml.safe_load(master["/etc/salt/master.d/brine.conf"].text)
    assert config["auto_accept"] is False and config["open_mode"] is False
    assert config["interface"] == "10.77.0.11"
    assert config["brine_cluster_master"] == "demo"
    assert config["pillar_roots"] == {"base": ["/srv/brine/pillar"]}
    assert config["ext_pillar"] == [{"brine": {}}]
    reactors = {tag: sls for entry in config["reactor"] for tag, sls in entry.items()}
    assert reactors == {"salt/auth": ["/srv/brine/product/reactors/minion_key.sls"],
                        "salt/minion/*/start": ["/srv/brine/product/reactors/node_onboard.sls"],
                        "brine/node/onboard": ["/srv/brine/product/reactors/node_onboard.sls"],
                        "brine/certs/expiring": ["/srv/brine/product/reactors/certs_expiring.sls"]}
    for sls in ("minion_key.sls", "node_onboard.sls", "certs_expiring.sls"):
        assert os.path.isfile(os.path.join(REPO_ROOT, "reactors", sls))


def test_payload_carries_this_cluster_only_with_secrets_0600(opts):
    low = brine_render.low_chunks(opts, "master1.demo", ["day2.payload"])
    managed = {c["name"]: c for c in low if c["state"] == "file" and c["fun"] == "managed"}
    assert {p for p in managed if p.startswith("/srv/brine/pillar/")} == {
        "/srv/brine/pillar/top.sls", "/srv/brine/pillar/clusters/demo/env.sls",
        "/srv/brine/pillar/clusters/demo/inventory.sls"}
    secrets = [c for p, c in managed.items() if p.startswith("/srv/brine/state/clusters/demo/")]
    assert any(c["name"].endswith("pki/kubernetes/ca.key") for c in secrets)
    assert all(c["mode"] == "0600" and c["show_changes"] is False for c in secrets)
    assert not brine_render.low_chunks(opts, "worker1.demo", ["day2.payload"])[0]["name"].startswith("/srv")


def test_payload_is_a_checkout_and_the_same_bytes_twice():
    first = brine_day2.payload_bytes(REPO_ROOT, "v-test")
    assert first == brine_day2.payload_bytes(REPO_ROOT, "v-test")
    assert hashlib.sha256(first).hexdigest() != hashlib.sha256(brine_day2.payload_bytes(REPO_ROOT, "v-other")).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(first)) as archive:
        names = set(archive.getnames())
        assert {"VERSION", "pillar/top.sls", "salt/top.sls", "reactors/node_onboard.sls", "_pillar/brine.py",
                "_runners/cluster.py", "_modules/brine_drift.py", "salt/cluster/node_add.sls"} <= names
        assert archive.getmember("ext/_modules").issym()
        assert not any("__pycache__" in n or n.startswith(("pillar/clusters", ".brine", "tests")) for n in names)


def test_salt_fingerprint_matches_salts_own():
    private, public = brine_pki._rsa_pair()
    assert private.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    expected = salt.utils.crypt.pem_finger(key=b"".join(public.splitlines(True)[1:-1]), sum_type="sha256")
    assert brine_pki.salt_finger(public.decode()) == expected


def test_cluster_list_shows_every_declared_cluster_with_its_version_and_nodes(env):
    proc = env.salt_run("cluster.list")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert proc.stdout.splitlines()[0].split() == ["cluster", "version", "masters", "workers", "pillar", "last", "job"]
    assert rows["demo"][1:5] == ["1.37.2", "3", "2", "valid"]
    assert "example" in rows


# --- the control cluster: its masters hold every other cluster and deploy it ---

USER_CLUSTER = "userc"


@pytest.fixture(scope="module")
def control_env(tmp_path_factory):
    """demo as the control cluster (env.day2.control), beside it a user cluster of its own
    network with an SSH key and known_hosts, and a cluster whose pillar does not validate."""
    root = tmp_path_factory.mktemp("control")
    salt_env = SaltEnv(str(root))
    salt_env.edit("demo", "env.sls", lambda data: data["env"].setdefault("day2", {}).update(control=True))
    shutil.rmtree(os.path.join(salt_env.pillar, "clusters", "example"))
    key = root / "user-key"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    for name in (USER_CLUSTER, "broken"):
        shutil.copytree(os.path.join(salt_env.pillar, "clusters", "demo"), os.path.join(salt_env.pillar, "clusters", name))

    def user_env(data):
        data["env"].update(name=USER_CLUSTER, day2={"control": False})
        data["env"]["networks"]["node"] = "10.78.0.0/24"
        data["env"]["bundle"].update(url="http://10.78.0.1:8080/", registry="10.78.0.1:5000")
        data["env"]["ssh"]["private_key"] = str(key)

    def user_inventory(data):
        for node in data["inventory"]["nodes"]:
            node["address"] = node["address"].replace("10.77.", "10.78.")

    salt_env.edit(USER_CLUSTER, "env.sls", user_env)
    salt_env.edit(USER_CLUSTER, "inventory.sls", user_inventory)
    salt_env.edit("broken", "env.sls", lambda data: data["env"].update(name="not-its-folder"))
    os.makedirs(os.path.join(salt_env.state, "clusters", USER_CLUSTER), exist_ok=True)
    with open(salt_env.known_hosts(USER_CLUSTER), "w", encoding="utf-8") as handle:
        handle.write("10.78.0.11 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEbrinetestkeyonlyforrender\n")
    for name in ("demo", USER_CLUSTER):
        assert salt_env.salt_run("cluster.secrets", name).returncode == 0
    assert salt_env.salt_run("cluster.agent_payload", "demo").returncode == 0
    return salt_env, str(key)


@pytest.fixture(scope="module")
def control_opts(control_env):
    return salt.config.master_config(os.path.join(control_env[0].config_dir, "master"))


def test_a_control_master_holds_every_valid_cluster_with_its_key_and_known_hosts(control_env, control_opts):
    salt_env, key = control_env
    low = brine_render.low_chunks(control_opts, "master1.demo", ["day2.payload"])
    managed = {c["name"]: c for c in low if c["state"] == "file" and c["fun"] == "managed"}
    assert {p for p in managed if p.startswith("/srv/brine/pillar/")} == {
        "/srv/brine/pillar/top.sls", "/srv/brine/pillar/clusters/demo/env.sls",
        "/srv/brine/pillar/clusters/demo/inventory.sls", f"/srv/brine/pillar/clusters/{USER_CLUSTER}/env.sls",
        f"/srv/brine/pillar/clusters/{USER_CLUSTER}/inventory.sls"}
    user_state = f"/srv/brine/state/clusters/{USER_CLUSTER}/"
    files = {p[len(user_state):]: c for p, c in managed.items() if p.startswith(user_state)}
    assert {"ssh/private_key", "known_hosts", "pki/kubernetes/ca.key", "secrets/bootstrap-token"} <= set(files)
    assert all(c["mode"] == "0600" and c["show_changes"] is False for c in files.values())
    assert not any("/broken/" in p for p in managed), "a cluster whose pillar does not validate is left out"
    proc = salt_env.salt_run("pillar.show_pillar", "master1.demo", "--out=json")
    written = json.loads(proc.stdout)["brine_secrets"]["salt"]["cluster_state"]
    assert written[f"{USER_CLUSTER}/ssh/private_key"] == read(key)
    assert written[f"{USER_CLUSTER}/known_hosts"] == read(salt_env.known_hosts(USER_CLUSTER))
    assert "demo/pki/kubernetes/ca.key" in written


def test_a_control_master_deploys_over_salt_ssh_with_keys_from_its_state(control_opts):
    config = yaml.safe_load(files_of(control_opts, "master1.demo")["/etc/salt/master.d/brine.conf"].text)
    assert config["roster"] == "brine"
    assert config["brine_ssh_keys_in_state"] is True
    assert config["ignore_host_keys"] is False and config["no_host_keys"] is False
    assert "/srv/brine/state/fileserver" in config["file_roots"]["base"]
    assert config["brine_cluster_master"] == "demo"


def test_a_user_clusters_masters_hold_only_their_own(control_opts):
    low = brine_render.low_chunks(control_opts, f"master1.{USER_CLUSTER}", ["day2.payload"])
    names = [c["name"] for c in low if c["state"] == "file" and c["fun"] == "managed"]
    assert {p for p in names if p.startswith("/srv/brine/pillar/")} == {
        "/srv/brine/pillar/top.sls", f"/srv/brine/pillar/clusters/{USER_CLUSTER}/env.sls",
        f"/srv/brine/pillar/clusters/{USER_CLUSTER}/inventory.sls"}
    assert all(p.startswith(f"/srv/brine/state/clusters/{USER_CLUSTER}/pki/") or
               p.startswith(f"/srv/brine/state/clusters/{USER_CLUSTER}/secrets/")
               for p in names if p.startswith("/srv/brine/state/"))
    config = yaml.safe_load(files_of(control_opts, f"master1.{USER_CLUSTER}")["/etc/salt/master.d/brine.conf"].text)
    assert "roster" not in config and "brine_ssh_keys_in_state" not in config
    assert "/srv/brine/state/fileserver" not in config["file_roots"]["base"]


def test_a_master_of_the_default_cluster_holds_no_other_cluster_and_no_ssh_key(opts):
    low = brine_render.low_chunks(opts, "master1.demo", ["day2.payload"])
    state = [c["name"] for c in low if c["state"] == "file" and c["name"].startswith("/srv/brine/state/")]
    assert state and all(path.startswith("/srv/brine/state/clusters/demo/pki/") or
                         path.startswith("/srv/brine/state/clusters/demo/secrets/") for path in state)


def test_nodes_and_new_machines_install_the_prebuilt_agent_and_never_run_pip(opts, master):
    loaded = brine_manifest.load_manifest(os.path.join(REPO_ROOT, "salt", "bundle", "manifests", "1.37.yaml"))
    url = f"http://10.77.0.1:8080/lines/1.37/agent/{brine_agent_archive.archive_name(loaded)}"
    low = brine_render.low_chunks(opts, "worker1.demo", ["day2.installed"])
    installed = next(c for c in low if c["__id__"] == "day2-salt-installed")
    assert installed["name"] == f"/usr/bin/python3 /opt/brine/agent-install.py {url} /opt/brine/salt"
    assert installed["creates"] == f"/opt/brine/salt/.{url.rsplit('/', 1)[1]}"
    with open(os.path.join(REPO_ROOT, "salt", "day2", "files", "agent-install.py"), encoding="utf-8") as handle:
        installer = handle.read()
    bootstrap = master["/srv/brine/minion-bootstrap.sh"].text
    assert f"python3 - {url} /opt/brine/salt <<'BRINE_EOF'\n{installer}" in bootstrap
    states = " ".join(str(c.get("name")) for c in low)
    assert "pip" not in states and "pip" not in bootstrap and "apt-get" not in bootstrap

