"""
Test clusters of their own: a pillar like the demo's under another name and
network, its testbed, and the deploy steps up to a served bundle, so that test
modules can run side by side with the demo without sharing machines.

    env = SaltEnv(str(tmp_path))
    cluster = TestCluster(env, "etcdt", third_octet=79, masters=3, workers=1)
    cluster.up()                    # testbed up, host keys trusted
    cluster.deploy()                # cluster.deploy as far as it goes today
    cluster.down()
"""

from __future__ import annotations

import os
import shutil

import yaml

from tests.saltenv import SaltEnv
from tests.testbed import Testbed

#: The stand-in bundle (tests/conftest.py's offline_bundle) as the testbed's deploy node sees it.
STANDINS_BUNDLE_ON_DEPLOY_NODE = "/srv/brine/incoming/brine-1.37-amd64-standins.tar"


class TestCluster:
    """A cluster declared in a SaltEnv's pillar and brought up on the testbed."""

    __test__ = False  # not a pytest test class

    def __init__(self, env: SaltEnv, name: str, third_octet: int, masters: int = 3, workers: int = 2,
                 env_overrides: dict | None = None, kubernetes: str = "standins",
                 spares: tuple[str, ...] = ()) -> None:
        """``kubernetes``: "standins" deploys the stand-in bundle (deploy with ``until``, the
        stand-ins cannot run a cluster); "built" the real one (`make bundle`). ``spares``:
        extra machines booted with the cluster (workers, addresses after the workers') but
        left out of its inventory - machines a test onboards or that must stay out."""
        self.env = env
        self.name = name
        base = f"10.{third_octet}.0"
        folder = os.path.join(env.pillar, "clusters", name)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(os.path.join(env.pillar, "clusters", "demo"), folder)

        def change_env(data: dict) -> None:
            data["env"]["name"] = name
            data["env"]["networks"]["node"] = f"{base}.0/24"
            data["env"]["bundle"]["url"] = f"http://{base}.1:8080/"
            data["env"]["bundle"]["registry"] = f"{base}.1:5000"
            if kubernetes == "standins":
                data["env"]["bundle"]["file"] = STANDINS_BUNDLE_ON_DEPLOY_NODE
            for key, value in (env_overrides or {}).items():
                data["env"][key] = value

        nodes = [{"name": f"master{i}", "address": f"{base}.{10 + i}", "roles": ["master", "etcd"]}
                 for i in range(1, masters + 1)]
        nodes += [{"name": f"worker{i}", "address": f"{base}.{20 + i}", "roles": ["worker"]}
                  for i in range(1, workers + 1)]
        spare_nodes = [{"name": spare, "address": f"{base}.{20 + workers + i}", "roles": ["worker"]}
                       for i, spare in enumerate(spares, start=1)]
        env.edit(name, "env.sls", change_env)
        inventory = os.path.join(folder, "inventory.sls")
        with open(inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"inventory": {"nodes": nodes + spare_nodes}}, handle, sort_keys=False)
        self.testbed = Testbed(name, os.path.dirname(os.path.dirname(os.path.abspath(__file__))), pillar_dir=folder)
        with open(inventory, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"inventory": {"nodes": nodes}}, handle, sort_keys=False)
        self.nodes = nodes
        self.spares = {spare["name"]: spare for spare in spare_nodes}

    def minion(self, node: str) -> str:
        return f"{node}.{self.name}"

    def up(self) -> None:
        self.testbed.up()
        for args in (("forget=*",), (f"known_hosts={self.testbed.host_keys_file}",)):
            proc = self.env.salt_run("cluster.trust", self.name, *args)
            assert proc.returncode == 0, proc.stdout + proc.stderr

    def deploy(self, timeout: int = 3600, until: str | None = None):
        return self.env.deploy(self.name, timeout=timeout, until=until)

    def down(self) -> None:
        """Take the testbed down; left up when BRINE_KEEP_TESTBED=1 (to look at a failure)."""
        if os.environ.get("BRINE_KEEP_TESTBED") == "1":
            print(f"\n{self.name}: testbed left up (BRINE_KEEP_TESTBED=1); "
                  f"python -m tests.testbed down {self.name} removes it")
            return
        self.testbed.down()

