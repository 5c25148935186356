"""
A declared cluster, as the deploy side sees it: its pillar, its folder of
deploy-side state, its SSH access files.

- Pillar: ``<pillar root>/clusters/<name>/{env,inventory}.sls``, rendered with
  Salt's renderers (Jinja then YAML, as any pillar SLS) and validated by
  :mod:`brine_pillar`.
- State: ``<brine_state_dir>/clusters/<name>/`` (git-ignored): ``known_hosts``
  (the only host keys Brine trusts for this cluster) and ``ssh_config`` (made
  from the pillar, for salt-ssh's jump hop, testinfra and people).
- Minion ids are ``<node>.<cluster>``, so ``*.demo`` targets one cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import brine_pillar
import salt.exceptions
import salt.loader
import salt.template

ENV_FILE = "env.sls"
INVENTORY_FILE = "inventory.sls"
JUMP_ALIAS = "brine-jump"


@dataclass
class Cluster:
    """A cluster's validated pillar plus where its deploy-side files live."""

    name: str
    pillar: dict[str, Any]
    state_dir: str
    repo_root: str
    problems: list[brine_pillar.Problem] = field(default_factory=list)
    #: On a control cluster's masters (``brine_ssh_keys_in_state``) the SSH key of
    #: env.ssh is Brine's copy in the state folder, not the path the pillar names.
    key_in_state: bool = False

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def env(self) -> dict[str, Any]:
        return self.pillar.get("env", {})

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return self.pillar.get("inventory", {}).get("nodes", [])

    def minion_id(self, node_name: str) -> str:
        return f"{node_name}.{self.name}"

    def node(self, node_name: str) -> dict[str, Any]:
        return next(n for n in self.ssh_targets if n["name"] == node_name)

    @property
    def jump_host(self) -> dict[str, Any]:
        return self.node(self.env["ssh"]["jump_host"])

    @property
    def deploy_node(self) -> dict[str, Any]:
        """The deploy node: it serves env.bundle, and salt-ssh reaches it directly as ``deploy.<cluster>``."""
        return {"name": brine_pillar.DEPLOY_NODE, "address": urlsplit(self.env["bundle"]["url"]).hostname,
                "roles": ["deploy"]}

    @property
    def ssh_targets(self) -> list[dict[str, Any]]:
        """Every machine salt-ssh reaches for this cluster: its nodes and its deploy node."""
        return [*self.nodes, self.deploy_node]

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.state_dir, "pki")

    @property
    def etcd_pki_dir(self) -> str:
        return os.path.join(self.state_dir, "pki", "etcd")

    @property
    def kubernetes_pki_dir(self) -> str:
        return os.path.join(self.state_dir, "pki", "kubernetes")

    @property
    def salt_pki_dir(self) -> str:
        return os.path.join(self.state_dir, "pki", "salt")

    @property
    def bootstrap_token_file(self) -> str:
        return os.path.join(self.state_dir, "secrets", "bootstrap-token")

    @property
    def registry_credentials(self) -> str:
        return os.path.join(self.state_dir, "secrets", "registry.json")

    @property
    def private_key(self) -> str:
        if self.key_in_state:
            return os.path.join(self.state_dir, "ssh", "private_key")
        return os.path.join(self.repo_root, os.path.expanduser(self.env["ssh"]["private_key"]))

    @property
    def known_hosts(self) -> str:
        return os.path.join(self.state_dir, "known_hosts")

    @property
    def ssh_config(self) -> str:
        return os.path.join(self.state_dir, "ssh_config")


def repo_root(opts: dict[str, Any]) -> str:
    """The repository root: where the Saltfile is, salt-run's working directory."""
    return os.path.abspath(opts.get("brine_repo_root") or os.getcwd())


def brine_version(opts: dict[str, Any]) -> str:
    """
    Which Brine runs here: ``git describe`` of the checkout, or on a cluster's own
    masters (no git checkout) the VERSION file of the day-2 agent's payload.
    """
    root = repo_root(opts)
    version_file = os.path.join(root, "VERSION")
    if os.path.isfile(version_file):
        with open(version_file, encoding="utf-8") as handle:
            return handle.read().strip()
    import subprocess  # pylint: disable=import-outside-toplevel

    proc = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True, text=True,
                          check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def pillar_root(opts: dict[str, Any]) -> str:
    return os.path.join(repo_root(opts), opts["pillar_roots"]["base"][0])


def state_root(opts: dict[str, Any]) -> str:
    return os.path.join(repo_root(opts), opts.get("brine_state_dir", ".brine"))


def cluster_names(opts: dict[str, Any]) -> list[str]:
    """Every cluster declared under ``pillar/clusters/``."""
    root = os.path.join(pillar_root(opts), "clusters")
    if not os.path.isdir(root):
        return []
    return sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, ENV_FILE)))


def display_path(path: str, root: str) -> str:
    """A path as a user would type it: relative to the repository root when inside it."""
    relative = os.path.relpath(path, root)
    return path if relative.startswith("..") else relative


def _render(path: str, opts: dict[str, Any], renderers: Any) -> Any:
    return salt.template.compile_template(
        path, renderers, opts["renderer"], opts["renderer_blacklist"], opts["renderer_whitelist"],
        saltenv="base",
    )


def load(opts: dict[str, Any], name: str, renderers: Any = None) -> Cluster:
    """
    Render and validate cluster ``name``. Never raises for a bad pillar:
    the returned :class:`Cluster` carries every problem found.
    """
    folder = os.path.join(pillar_root(opts), "clusters", str(name))
    cluster = Cluster(
        name=str(name), pillar={}, state_dir=os.path.join(state_root(opts), "clusters", str(name)),
        repo_root=repo_root(opts), key_in_state=bool(opts.get("brine_ssh_keys_in_state")),
    )
    if not brine_pillar.RFC1123_LABEL.match(str(name)) or not os.path.isdir(folder):
        known = ", ".join(cluster_names(opts)) or "none yet"
        cluster.problems.append(brine_pillar.Problem(
            "cluster", f"no cluster '{name}' under {display_path(os.path.dirname(folder), cluster.repo_root)}/",
            f"one of: {known}; a new cluster is a folder with env.sls and inventory.sls (see pillar/clusters/example/)",
        ))
        return cluster
    if renderers is None:
        renderers = salt.loader.render(opts, salt.loader.minion_mods(opts))
    merged: dict[str, Any] = {}
    for filename, key in ((ENV_FILE, "env"), (INVENTORY_FILE, "inventory")):
        path = os.path.join(folder, filename)
        where = display_path(path, cluster.repo_root)
        if not os.path.isfile(path):
            cluster.problems.append(brine_pillar.Problem(where, "is missing", f"a file holding the '{key}' mapping"))
            continue
        try:
            data = _render(path, opts, renderers)
        except salt.exceptions.SaltRenderError as error:
            cluster.problems.append(brine_pillar.Problem(where, f"does not render: {error}", "valid Jinja and YAML"))
            continue
        if not isinstance(data, dict) or set(data) - {key}:
            cluster.problems.append(brine_pillar.Problem(
                where, f"holds {sorted(data) if isinstance(data, dict) else type(data).__name__}",
                f"one top-level key, '{key}'",
            ))
            continue
        merged.update(data)
    if not cluster.problems:
        cluster.problems = brine_pillar.validate(merged, folder_name=str(name))
    if not cluster.problems:
        cluster.pillar = brine_pillar.parse(merged).model_dump(mode="json")
    return cluster


def _quote(path: str) -> str:
    if any(c in path for c in "\"'\\ \t\n"):
        raise ValueError(f"path {path!r} has spaces or quotes, which ssh options cannot carry; move it")
    return path


def ssh_config_text(cluster: Cluster) -> str:
    """
    The cluster's ssh_config: the jump host (and the deploy node) reached
    directly, every other node through the jump host (ProxyJump), host keys
    checked on both hops against the cluster's own known_hosts only, never a prompt.
    """
    ssh = cluster.env["ssh"]
    jump = cluster.jump_host
    common = [
        f"User {ssh['user']}",
        f"Port {ssh['port']}",
        f"IdentityFile {_quote(cluster.private_key)}",
        "IdentitiesOnly yes",
        f"UserKnownHostsFile {_quote(cluster.known_hosts)}",
        "GlobalKnownHostsFile /dev/null",
        "StrictHostKeyChecking yes",
        "UpdateHostKeys no",
        "BatchMode yes",
        "ConnectTimeout 10",
    ]
    lines = [
        f"# Made by Brine from pillar/clusters/{cluster.name}/ - do not edit.",
        f"# ssh -F {cluster.ssh_config} <node>",
        f"Host {JUMP_ALIAS} {jump['name']}",
        f"  HostName {jump['address']}",
        *(f"  {line}" for line in common),
    ]
    for node in cluster.ssh_targets:
        if node["name"] == jump["name"]:
            continue
        lines += [f"Host {node['name']}", f"  HostName {node['address']}"]
        if node["name"] != brine_pillar.DEPLOY_NODE:
            lines.append(f"  ProxyJump {JUMP_ALIAS}")
        lines += [f"  {line}" for line in common]
    return "\n".join(lines) + "\n"


def write_private_file(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` (0600, parent 0700) if it differs; True if written."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    except FileNotFoundError:
        pass
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return True


def ensure_ssh_config(cluster: Cluster) -> str:
    """Make the cluster's ssh_config current; return its path."""
    write_private_file(cluster.ssh_config, ssh_config_text(cluster))
    return cluster.ssh_config


def roster_entry(cluster: Cluster, node: dict[str, Any]) -> dict[str, Any]:
    """
    The salt-ssh roster entry for one node. salt-ssh passes ``ssh_options`` with
    ``-o`` to ssh and scp, which never reach a ProxyJump hop; so the hop is the
    ProxyCommand that ProxyJump stands for, reading the cluster's ssh_config.
    """
    ssh = cluster.env["ssh"]
    options = [
        f"UserKnownHostsFile={_quote(cluster.known_hosts)}",
        "GlobalKnownHostsFile=/dev/null",
        "StrictHostKeyChecking=yes",
        "UpdateHostKeys=no",
        "BatchMode=yes",
    ]
    if node["name"] not in (cluster.jump_host["name"], brine_pillar.DEPLOY_NODE):
        options.append(f'ProxyCommand="ssh -F {_quote(cluster.ssh_config)} -W [%h]:%p {JUMP_ALIAS}"')
    return {
        "host": node["address"],
        "user": ssh["user"],
        "port": ssh["port"],
        "priv": cluster.private_key,
        "identities_only": True,
        "ssh_options": options,
    }


def known_host_name(address: str, port: int) -> str:
    """How ssh names a host in known_hosts."""
    return address if int(port) == 22 else f"[{address}]:{port}"
