"""
The offline bundle end to end on the testbed: built from the local mirror and
verified (a corrupted artifact refused by name), served by the deploy node's
nginx and docker-registry (TLS, htpasswd) from Salt states, and used by a node
with no route anywhere else: apt installs from the file server only, containerd
pulls ``registry.k8s.io/...`` by its public name from the private registry, an
unauthenticated pull is refused, and the zero-egress check catches a manifest
naming Docker Hub.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from tests.saltenv import REPO_ROOT, SaltEnv
from tests.testbed.spec import BUNDLE_DROP

pytestmark = [pytest.mark.testbed, pytest.mark.slow]

MIRROR = "/var/cache/brine/mirror/1.37-standins"
MANIFEST = os.path.join(REPO_ROOT, "salt", "bundle", "manifests", "1.37.yaml")
BUNDLE = str(BUNDLE_DROP / "brine-1.37-amd64-standins.tar")
PAUSE = "registry.k8s.io/pause:3.10.2"


def run(argv, timeout=3600):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def mirror():
    proc = run([sys.executable, "-m", "tests.mirror", "build", "--manifest", MANIFEST, "--out", MIRROR])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return MIRROR


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    salt_env = SaltEnv(str(tmp_path_factory.mktemp("bundle")))

    def standins_bundle(data):  # the bundle this module builds
        data["env"]["bundle"]["file"] = "/srv/brine/incoming/" + os.path.basename(BUNDLE)

    salt_env.edit("demo", "env.sls", standins_bundle)
    return salt_env


@pytest.fixture(scope="module")
def pinned_manifest(env, mirror):
    """The release line's manifest with its unpinned sums taken from the mirror, as a maintainer would."""
    path = os.path.join(env.root, "1.37.yaml")
    shutil.copy(MANIFEST, path)
    proc = env.salt_run("bundle.pin", "release=1.37", f"manifest={path}", f"source={mirror}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


@pytest.fixture(scope="module")
def bundle(env, mirror, pinned_manifest):
    proc = env.salt_run("bundle.build", "release=1.37", f"manifest={pinned_manifest}", f"source={mirror}",
                        f"output={BUNDLE}")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return BUNDLE


@pytest.fixture(scope="module")
def served(env, bundle, demo_testbed):
    """The demo testbed with its bundle on the deploy node, deployed up to the bundle services."""
    assert env.salt_run("cluster.trust", "demo", f"known_hosts={demo_testbed.host_keys_file}").returncode == 0
    proc = env.deploy("demo", timeout=1800, until="bundle")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return proc


@pytest.fixture(scope="module")
def worker(env, served, demo_testbed):
    """worker1 with apt pointed at the file server, the bundle CA and containerd."""
    proc = env.salt_ssh("worker1.demo", "state.apply", "offline_repo,bundle_ca,containerd", "--state-output=terse")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    return demo_testbed


def registry_password(env):
    with open(os.path.join(env.state, "clusters", "demo", "secrets", "registry.json"), encoding="utf-8") as handle:
        return json.load(handle)["password"]


def test_bundle_verifies(env, bundle):
    proc = env.salt_run("bundle.verify", bundle)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"bundle \w{16} \(1\.37, v1\.37\.2\): verified 1 agent, 5 binaries, \d+ debs, 1 file, 7 images, \d+ wheels",
                     proc.stdout), proc.stdout


def test_a_corrupted_artifact_is_refused_by_name(env, mirror, pinned_manifest, tmp_path):
    # A mirror identical to the real one but for one flipped byte in one package.
    broken = tmp_path / "mirror"
    shutil.copytree(mirror, broken, copy_function=os.symlink)
    victim = next(p for p in broken.rglob("containerd_*.deb"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.unlink()
    victim.write_bytes(bytes(data))
    proc = env.salt_run("bundle.build", "release=1.37", f"manifest={pinned_manifest}", f"source={broken}",
                        f"output={tmp_path / 'b.tar'}")
    assert proc.returncode != 0
    assert re.search(rf"^deb containerd \S+ from {broken}: sha256 mismatch: expected [0-9a-f]{{64}}, got [0-9a-f]{{64}}$",
                     proc.stdout, re.M), proc.stdout[-3000:]
    assert "bundle not built" in proc.stdout
    assert not (tmp_path / "b.tar").exists()


def test_deploy_serves_the_bundle(served):
    assert "ID: cluster-bundle-served" in served.stdout
    assert "Failed:    0" in served.stdout


def test_a_second_deploy_changes_nothing(env, served):
    proc = env.deploy("demo", timeout=1800, until="bundle")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "changed=" not in proc.stdout.split("Summary for vm_master")[-1], proc.stdout[-4000:]
    again = env.salt_ssh("deploy.demo", "state.apply", "bundle_server", "--state-output=terse")
    assert again.returncode == 0 and "(changed=" not in again.stdout, again.stdout[-3000:]


def test_file_server_serves_the_apt_repository(worker):
    # the current bundle, and the same under its release line (what nodes fetch from)
    for path in ("debs/Release", "lines/1.37/debs/Release"):
        proc = worker.run("worker1", f"curl -fsS http://10.77.0.1:8080/{path}")
        assert proc.returncode == 0, (path, proc.stderr)
        assert "SHA256:" in proc.stdout and "Packages" in proc.stdout


def test_node_installs_packages_from_the_file_server_only(worker):
    sources = worker.run("worker1", "ls /etc/apt/sources.list.d; grep -v '^#' /etc/apt/sources.list || true").stdout
    assert sources.split() == ["brine.list"]
    proc = worker.run("worker1", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q socat && socat -V | head -2",
                      timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    policy = worker.run("worker1", "apt-cache policy socat").stdout
    assert "http://10.77.0.1:8080/lines/1.37/debs ./" in policy
    assert "deb.debian.org" not in policy
    assert worker.run("worker1", "ip route get 1.1.1.1").returncode != 0


def test_registry_refuses_without_credentials(worker, env):
    anonymous = worker.run("worker1", "curl -s -o /dev/null -w '%{http_code}' https://10.77.0.1:5000/v2/")
    assert anonymous.stdout == "401"
    password = registry_password(env)
    authorised = worker.run("worker1", "curl -s -o /dev/null -w '%{http_code}' -K -",
                            input=f'user = "brine:{password}"\nurl = "https://10.77.0.1:5000/v2/"\n')
    assert authorised.stdout == "200"


def test_containerd_pulls_a_public_name_from_the_private_registry(worker, env):
    password = registry_password(env)
    proc = worker.run("worker1", f"ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d -u brine:{password} "
                                 f"{PAUSE}", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = worker.run("worker1", "ctr -n k8s.io images ls -q").stdout.split()
    assert PAUSE in listed


def test_an_unauthenticated_pull_is_refused(worker):
    proc = worker.run("worker1", "ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d "
                                 "registry.k8s.io/coredns/coredns:v1.14.6", timeout=120)
    assert proc.returncode != 0
    assert re.search(r"401|unauthorized|authorization", proc.stderr + proc.stdout, re.I), proc.stderr


def test_node_states_are_idempotent(worker, env):
    proc = env.salt_ssh("worker1.demo", "state.apply", "offline_repo,bundle_ca,containerd", "--state-output=terse")
    assert proc.returncode == 0 and "(changed=" not in proc.stdout, proc.stdout[-3000:]


def test_a_node_installs_the_prebuilt_agent_and_runs_no_pip(worker, env):
    started = time.monotonic()
    proc = env.salt_ssh("worker1.demo", "state.apply", "day2.installed", "--state-output=terse")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    print(f"\nFIGURE prebuilt agent fetched, checked and unpacked on a node over salt-ssh (s): "
          f"{time.monotonic() - started:.1f}")
    assert worker.run("worker1", "/opt/brine/salt/bin/salt-call --version").stdout.split() == [
        "salt-call", "3008.4", "(Argon)"]
    listing = worker.run("worker1", "ls -A /opt/brine /opt/brine/salt").stdout.split()
    assert "agent-install.py" in listing and any(n.startswith(".salt-agent-3008.4-cp311-") for n in listing)
    assert not [n for n in listing if "requirements" in n or n.startswith(".agent-")], listing
    # the node needs no venv module (and so no pip) of its own
    assert worker.run("worker1", "dpkg -s python3-venv >/dev/null 2>&1").returncode != 0
    again = env.salt_ssh("worker1.demo", "state.apply", "day2.installed", "--state-output=terse")
    assert again.returncode == 0 and "(changed=" not in again.stdout, again.stdout[-3000:]


def test_zero_egress_passes_on_what_brine_renders(env, served):
    proc = env.salt_run("cluster.egress", "demo")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cluster demo: no image or URL leaves the cluster" in proc.stdout


def test_zero_egress_catches_docker_hub(env, served, tmp_path):
    addon = tmp_path / "addons"
    addon.mkdir()
    (addon / "web.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n"
                                    "    - name: web\n      image: docker.io/library/nginx\n")
    proc = env.salt_run("cluster.egress", "demo", f"paths={addon}")
    assert proc.returncode != 0
    assert f"{addon}/web.yaml:8: docker.io/library/nginx is not an image of the private registry 10.77.0.1:5000" \
        in proc.stdout
