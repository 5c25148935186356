"""The demo cluster's pillar, complete, at a chosen Kubernetes version, and the kubeadm
documents Brine renders for one of its nodes (the kubeadm render and strict tests)."""

from __future__ import annotations

from pathlib import Path

import brine_kubeadm
import brine_pillar
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "ab" * 32


def cluster(version: str = "1.37.2", **env_changes) -> dict:
    with open(REPO_ROOT / "pillar/clusters/demo/env.sls", encoding="utf-8") as handle:
        env = yaml.safe_load(handle)
    with open(REPO_ROOT / "pillar/clusters/demo/inventory.sls", encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    env["env"]["kubernetes_version"] = version
    env["env"].update(env_changes)
    return brine_pillar.parse({**env, **inventory}).model_dump(mode="json")


def docs_of(full: dict, node: str) -> list[dict]:
    this = next(n for n in full["inventory"]["nodes"] if n["name"] == node)
    return brine_kubeadm.documents(full["env"], full["inventory"], this, TOKEN, CA_HASH)


def by_kind(docs: list[dict]) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in docs}
