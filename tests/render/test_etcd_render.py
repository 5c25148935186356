"""
What the etcd states write on the demo cluster's members, rendered on the
deploy side: Debian's unit given Brine's flags only (TLS for clients and peers,
client certificates required, the initial cluster of all three members), each
member's own certificates, the backup timer; nothing etcd on a worker, the etcd
CA key nowhere; and the orchestrates' etcd steps targeting the members. Nothing
here connects to any machine.
"""

import json
import os
import shlex
import shutil

import brine_render
import pytest
import salt.config
import yaml

from tests.saltenv import REPO_ROOT, SaltEnv

MEMBERS = {"master1": "10.77.0.11", "master2": "10.77.0.12", "master3": "10.77.0.13"}
DROP_IN = "/etc/systemd/system/etcd.service.d/brine.conf"
with open(os.path.join(REPO_ROOT, "salt", "etcd", "defaults.yaml"), encoding="utf-8") as _handle:
    DEFAULTS = yaml.safe_load(_handle)["etcd"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("render-etcd")))
    assert salt_env.salt_run("cluster.secrets", "demo").returncode == 0
    return salt_env


@pytest.fixture(scope="module")
def opts(env):
    return salt.config.master_config(os.path.join(env.config_dir, "master"))


@pytest.fixture(scope="module")
def rendered(opts):
    """Each machine's highstate, rendered: {machine: {path: text}}."""
    return {node: {f.path: f.text for f in brine_render.render_states(opts, f"{node}.demo")}
            for node in [*MEMBERS, "worker1", "deploy"]}


def unit_lines(text):
    """A unit file's lines with continuations joined, comments dropped."""
    return [line for line in text.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]


def flags(text):
    """The etcd flags of the drop-in's ExecStart: {name: value}."""
    exec_start = [line for line in unit_lines(text) if line.startswith("ExecStart=") and line != "ExecStart="]
    assert len(exec_start) == 1, exec_start
    argv = shlex.split(exec_start[0].removeprefix("ExecStart="))
    assert argv[0] == "/usr/bin/etcd"
    parsed = dict(arg.removeprefix("--").split("=", 1) for arg in argv[1:])
    assert len(parsed) == len(argv) - 1, "a flag is given twice"
    return parsed


@pytest.mark.parametrize("member", list(MEMBERS))
def test_etcd_flags(rendered, member):
    address = MEMBERS[member]
    got = flags(rendered[member][DROP_IN])
    assert got["initial-cluster"] == ",".join(f"{name}=https://{ip}:2380" for name, ip in MEMBERS.items())
    assert got["name"] == member
    assert got["data-dir"] == "/var/lib/etcd"
    assert got["listen-client-urls"] == f"https://{address}:2379,https://127.0.0.1:2379"
    # Only the member's own address is advertised: `endpoint health --cluster` dials what is advertised.
    assert got["advertise-client-urls"] == f"https://{address}:2379"
    assert got["listen-peer-urls"] == got["initial-advertise-peer-urls"] == f"https://{address}:2380"
    assert got["initial-cluster-state"] == "new"
    assert got["initial-cluster-token"] == "brine-demo"
    assert got["client-cert-auth"] == got["peer-client-cert-auth"] == "true"
    assert got["auto-tls"] == got["peer-auto-tls"] == "false"
    assert got["trusted-ca-file"] == got["peer-trusted-ca-file"] == "/etc/etcd/pki/ca.crt"
    assert (got["cert-file"], got["key-file"]) == ("/etc/etcd/pki/server.crt", "/etc/etcd/pki/server.key")
    assert (got["peer-cert-file"], got["peer-key-file"]) == ("/etc/etcd/pki/peer.crt", "/etc/etcd/pki/peer.key")
    assert not any(value.startswith("http://") for value in got.values())


def test_the_packaged_environment_is_dropped(rendered):
    lines = unit_lines(rendered["master1"][DROP_IN])
    service = lines[lines.index("[Service]") + 1:]
    # Debian's unit sets ETCD_NAME and ETCD_DATA_DIR and reads /etc/default/etcd: all reset, nothing set.
    assert service[:3] == ["Environment=", "EnvironmentFile=", "ExecStart="]
    assert not [line for line in service if line.startswith(("Environment=", "EnvironmentFile=")) and not line.endswith("=")]
    assert "Restart=on-failure" in service
    assert f"TimeoutStartSec={DEFAULTS['start_timeout']}" in service


@pytest.mark.parametrize("member", list(MEMBERS))
def test_each_member_gets_its_own_certificates(rendered, env, member):
    pki = os.path.join(env.state, "clusters", "demo", "pki", "etcd")

    def deploy_side(*parts):
        with open(os.path.join(pki, *parts), encoding="ascii") as handle:
            return handle.read()

    files = rendered[member]
    for kind in ("server", "peer"):
        for ext in ("crt", "key"):
            assert files[f"/etc/etcd/pki/{kind}.{ext}"] == deploy_side(member, f"{kind}.{ext}")
    assert files["/etc/etcd/pki/ca.crt"] == deploy_side("ca.crt")
    assert sorted(p.rsplit("/", 1)[1] for p in files if p.startswith("/etc/etcd/pki/")) == sorted(DEFAULTS["pki_files"])


def test_nothing_etcd_on_a_worker_and_the_etcd_ca_key_nowhere(rendered, env):
    assert not [path for path in rendered["worker1"] if "etcd" in path]
    with open(os.path.join(env.state, "clusters", "demo", "pki", "etcd", "ca.key"), encoding="ascii") as handle:
        ca_key = handle.read()
    for machine, files in rendered.items():
        assert not [path for path, text in files.items() if ca_key in text], machine


def test_backups_on_a_timer_with_retention(rendered):
    files = rendered["master2"]
    backup = DEFAULTS["backup"]
    timer = unit_lines(files[f"/etc/systemd/system/{backup['unit']}.timer"])
    assert f"OnCalendar={backup['on_calendar']}" in timer and "Persistent=true" in timer
    service = unit_lines(files[f"/etc/systemd/system/{backup['unit']}.service"])
    assert {"Type=oneshot", "User=etcd", f"ExecStart={backup['script']}"} <= set(service)
    script = files[backup["script"]]
    assert f"keep={backup['keep']}" in script and f"dir={backup['dir']}" in script
    assert 'snapshot save "$snapshot"' in script and "--endpoints=https://127.0.0.1:2379 " in script
    assert "--cert=/etc/etcd/pki/healthcheck-client.crt" in script


def show(env, sls, pillar):
    proc = env.salt_run("state.orchestrate_show_sls", sls, f"pillar={json.dumps(pillar)}", "--out=json")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    steps = next(iter(json.loads(proc.stdout).values()))
    return {sid: {key: value for item in next(v for k, v in step.items() if not k.startswith("__"))
                  if isinstance(item, dict) for key, value in item.items()} for sid, step in steps.items()}


def test_deploy_applies_etcd_to_the_members(env):
    steps = show(env, "cluster.deploy", {"cluster": "demo"})
    step = steps["cluster-etcd-healthy"]
    assert step["tgt"] == [f"{member}.demo" for member in MEMBERS]
    assert step["tgt_type"] == "list" and step["ssh"] is True
    assert step["sls"] == ["offline_repo", "etcd"]

    def before(sid):
        """Every step ``sid`` waits for, directly or not."""
        direct = [value for item in steps[sid].get("require", []) for value in item.values()]
        return set(direct).union(*(before(other) for other in direct))

    # It runs only once the file server it installs from is up (and after whatever the lead chains before it).
    assert "cluster-bundle-served" in before("cluster-etcd-healthy")
    # The job's report expects every step, masters' and workers' joins included.
    assert {"masters", "workers"} <= set(steps["cluster-report-written"]["plan"])


def test_a_one_master_cluster_without_workers_plans_no_join_steps(env):
    """A lone master joins no other master and no worker: the job, which marks itself
    failed for any planned step that recorded nothing, must not expect them."""
    shutil.copytree(os.path.join(env.pillar, "clusters", "demo"), os.path.join(env.pillar, "clusters", "solo"))
    env.edit("solo", "env.sls", lambda data: data["env"].update(name="solo"))
    env.edit("solo", "inventory.sls", lambda data: data["inventory"].update(nodes=data["inventory"]["nodes"][:1]))
    plan = show(env, "cluster.deploy", {"cluster": "solo"})["cluster-report-written"]["plan"]
    assert "masters" not in plan and "workers" not in plan
    assert plan[0] == "validate" and plan[-1] == "agent"


def test_the_restore_orchestrate_targets_the_members(env):
    steps = show(env, "cluster.etcd_restore", {"cluster": "demo", "snapshot": "etcd-20250101T000000Z.db"})
    assert steps["etcd-restore-snapshot-staged"]["snapshot"] == "etcd-20250101T000000Z.db"
    for sid, sls in (("etcd-restore-members-restored", "etcd.restored"), ("etcd-restore-cluster-healthy", "etcd.running")):
        assert steps[sid]["tgt"] == [f"{member}.demo" for member in MEMBERS]
        assert steps[sid]["sls"] == [sls] and steps[sid]["ssh"] is True


def test_an_unknown_cluster_renders_with_no_targets(env):
    assert show(env, "cluster.deploy", {"cluster": "nope"})["cluster-etcd-healthy"]["tgt"] == []
    assert show(env, "cluster.etcd_restore", {"cluster": "nope"})["etcd-restore-members-restored"]["tgt"] == []


@pytest.mark.parametrize("sls", ["etcd.clean", "etcd.restored", "etcd.backup"])
def test_the_other_etcd_states_compile(opts, sls):
    brine_render.render_states(opts, "master1.demo", mods=[sls])  # raises naming the SLS if it does not compile

