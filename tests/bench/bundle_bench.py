"""
Figures of the offline bundle on this machine (no assertions): mirror build
(warm), bundle build cold and warm and its size, the deploy node's services from
a fresh testbed (unpack, install, configure, push every image), and pulls of the
control-plane images by their public names on one node and on all nodes at once.

Run as root from the repository root: ``.venv/bin/python tests/bench/bundle_bench.py``.
It brings the demo testbed up fresh and takes it down at the end.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO_ROOT not in sys.path:  # run as a script: import `tests` from the checkout
    sys.path.insert(0, REPO_ROOT)

from tests.saltenv import SaltEnv  # noqa: E402
from tests.testbed import Testbed  # noqa: E402
from tests.testbed.spec import BUNDLE_DROP  # noqa: E402

MANIFEST = os.path.join(REPO_ROOT, "salt", "bundle", "manifests", "1.37.yaml")
MIRROR = "/var/cache/brine/mirror/1.37"
BUNDLE = str(BUNDLE_DROP / "brine-1.37-amd64.tar")
CONTROL_PLANE = ["registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2",
                 "registry.k8s.io/kube-scheduler:v1.37.2", "registry.k8s.io/kube-proxy:v1.37.2",
                 "registry.k8s.io/pause:3.10.2", "registry.k8s.io/coredns/coredns:v1.14.6"]
NODES = ["master1", "master2", "master3", "worker1", "worker2"]


def timed(what, call):
    start = time.monotonic()
    proc = call()
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed after {elapsed:.1f} s:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc


def main() -> None:
    figures: dict[str, str] = {}
    run = lambda *argv: subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: E731
    seconds, _ = timed("mirror", lambda: run(sys.executable, "-m", "tests.mirror", "build", "--manifest", MANIFEST,
                                             "--out", MIRROR))
    figures["mirror build (warm)"] = f"{seconds:.1f} s"
    testbed = Testbed("demo", REPO_ROOT)
    testbed.down()
    with tempfile.TemporaryDirectory() as root:
        env = SaltEnv(root)
        manifest = os.path.join(root, "1.37.yaml")
        shutil.copy(MANIFEST, manifest)
        timed("pin", lambda: env.salt_run("bundle.pin", "release=1.37", f"manifest={manifest}", f"source={MIRROR}"))
        shutil.rmtree(BUNDLE + ".work", ignore_errors=True)
        build = lambda: env.salt_run("bundle.build", "release=1.37", f"manifest={manifest}",  # noqa: E731
                                     f"source={MIRROR}", f"output={BUNDLE}")
        seconds, _ = timed("bundle build", build)
        figures["bundle build, cold (154 artifacts verified and packed)"] = f"{seconds:.1f} s"
        seconds, _ = timed("bundle build", build)
        figures["bundle build, warm (all reused)"] = f"{seconds:.1f} s"
        figures["bundle size"] = f"{os.path.getsize(BUNDLE) / 2**20:.1f} MiB"
        try:
            testbed.up()
            timed("trust", lambda: env.salt_run("cluster.trust", "demo", f"known_hosts={testbed.host_keys_file}"))
            timed("secrets", lambda: env.salt_run("cluster.secrets", "demo"))
            seconds, proc = timed("bundle_server", lambda: env.salt_ssh("deploy.demo", "state.apply", "bundle_server",
                                                                      "--out=json"))
            figures["deploy node services from bare (state.apply bundle_server)"] = f"{seconds:.1f} s"
            result = json.loads(proc.stdout)["deploy.demo"]
            for key, state in result.items():
                if key.startswith("brine_registry_|-bundle-images-pushed"):
                    figures["push of all 7 images (skopeo, in that run)"] = f"{state['duration'] / 1000:.1f} s"
                if key.startswith("brine_bundle_|-bundle-unpacked"):
                    figures["unpack and verify the bundle (in that run)"] = f"{state['duration'] / 1000:.1f} s"
            targets = ",".join(f"{n}.demo" for n in NODES)
            seconds, _ = timed("node states", lambda: env.salt_ssh("-L", targets, "state.apply",
                                                                   "offline_repo,bundle_ca,containerd"))
            figures["apt + CA + containerd on 5 nodes from bare"] = f"{seconds:.1f} s"
            with open(os.path.join(env.state, "clusters", "demo", "secrets", "registry.json"), encoding="utf-8") as f:
                password = json.load(f)["password"]
            pull = " && ".join(f"ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d -u brine:{password} "
                               f"{image} >/dev/null" for image in CONTROL_PLANE)

            def pull_on(node):
                return timed(f"pull on {node}", lambda: testbed.run(node, pull, timeout=600))[0]

            figures["pull 6 control-plane images, one node"] = f"{pull_on('master1'):.1f} s"
            start = time.monotonic()
            with ThreadPoolExecutor(len(NODES) - 1) as pool:
                each = list(pool.map(pull_on, NODES[1:]))
            figures["pull 6 control-plane images, 4 nodes at once"] = (
                f"{time.monotonic() - start:.1f} s (slowest node {max(each):.1f} s)")
        finally:
            testbed.down()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    print(json.dumps({"bench": "bundle", "figures": figures}))


if __name__ == "__main__":
    main()
