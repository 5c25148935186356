"""
Brine's cluster runner: checks and actions on a declared cluster, run on the
deploy node (or a control cluster's salt-master) from the repository root.

Every function is also a step of the ``cluster.*`` orchestrates; each returns
what it found and sets a non-zero exit code when it fails.

CLI Example:

.. code-block:: bash

    salt-run cluster.validate demo
    salt-run cluster.trust demo known_hosts=/path/to/provisioned_known_hosts
    salt-run cluster.reach demo
    salt-run cluster.secrets demo
    salt-run cluster.members demo role=etcd
"""

import base64
import hashlib
import logging
import os
import subprocess

import brine_cluster
import brine_egress
import brine_pillar
import brine_pki
import brine_render

log = logging.getLogger(__name__)

__virtualname__ = "cluster"


def __virtual__():
    return __virtualname__


def _report(lines, ok, changes=None):
    """
    A runner's return: the lines it reports, printed one per line by the
    brine_lines outputter, the exit code salt-run and orchestrates obey, and
    what it changed (for the orchestrate step's changes).
    """
    __context__["retcode"] = 0 if ok else 1
    return {"outputter": "brine_lines", "lines": lines, "retcode": 0 if ok else 1, "changes": changes or {}}


def _fail(lines):
    return _report(lines, ok=False)


def _done(lines):
    return _report(lines, ok=True)


def _load(cluster):
    return brine_cluster.load(__opts__, cluster)


def validate(cluster=None):
    """
    Check cluster ``cluster``'s pillar and report every problem at once, one per
    line: ``<field path>: <what is wrong> (<what is accepted>)``. Exits non-zero
    when there is any. Touches no node.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.validate demo
    """
    if not cluster:
        return _fail(["cluster: no cluster named (salt-run cluster.validate <name>, or pillar='{\"cluster\": \"<name>\"}')"])
    loaded = _load(cluster)
    if not loaded.valid:
        return _fail([str(problem) for problem in loaded.problems]
                     + [f"cluster {cluster}: {len(loaded.problems)} problem(s); nothing was changed on any node"])
    return _done([f"cluster {cluster}: pillar valid ({len(loaded.nodes)} nodes)"])


# --------------------------------------------------------------------------
# Host keys
# --------------------------------------------------------------------------


def _fingerprint(key_b64):
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _read_known_hosts(path):
    """{host name: {key type: base64 key}} from a known_hosts file (hashed names skipped)."""
    entries = {}
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return entries
    for line in lines:
        fields = line.split()
        if len(fields) < 3 or line.startswith(("#", "|", "@")):
            continue
        for host in fields[0].split(","):
            entries.setdefault(host, {})[fields[1]] = fields[2]
    return entries


def _write_known_hosts(path, entries):
    text = "".join(
        f"{host} {key_type} {key}\n"
        for host in sorted(entries)
        for key_type, key in sorted(entries[host].items())
    )
    brine_cluster.write_private_file(path, text)


def _scan(loaded, node):
    """Host keys a node offers, fetched from the deploy node (jump host) or through the jump host."""
    port = str(loaded.env["ssh"]["port"])
    scan = ["ssh-keyscan", "-T", "5", "-p", port, node["address"]]
    if node["name"] not in (loaded.jump_host["name"], brine_pillar.DEPLOY_NODE):
        scan = ["ssh", "-F", loaded.ssh_config, brine_cluster.JUMP_ALIAS, " ".join(scan)]
    proc = subprocess.run(scan, capture_output=True, text=True, timeout=60, check=False)
    keys = {}
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            keys[fields[1]] = fields[2]
    if not keys:
        reason = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no key offered"
        raise RuntimeError(reason)
    return keys


def trust(cluster, known_hosts=None, accept_new=False, forget=None):
    """
    Manage the host keys Brine trusts for a cluster (``.brine/clusters/<name>/known_hosts``).
    SSH never prompts and never accepts an unknown or changed key; this is the one place
    keys enter.

    known_hosts
        Import the keys of the inventory's nodes from a known_hosts file obtained
        out of band (from the provisioning system, or the testbed).
    accept_new
        Scan nodes that have no trusted key yet (the jump host from here, the others
        through it) and trust what they offer, printing each fingerprint. A node whose
        ``host_key_fingerprint`` is declared in the inventory must offer that key.
    forget
        Node names (comma-separated, or ``*`` for every machine): drop their trusted
        keys (after they were reinstalled), then trust them again.

    A key that differs from one already trusted is refused, naming the node.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.trust demo known_hosts=/var/lib/brine-testbed/demo/known_hosts
        salt-run cluster.trust demo accept_new=True
        salt-run cluster.trust demo forget=worker2
        salt-run cluster.trust demo forget='*'
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    brine_cluster.ensure_ssh_config(loaded)
    port = loaded.env["ssh"]["port"]
    trusted = _read_known_hosts(loaded.known_hosts)
    by_name = {node["name"]: node for node in loaded.ssh_targets}
    lines, problems = [], []

    if forget:
        names = list(by_name) if forget == "*" else [n.strip() for n in str(forget).split(",")]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            return _fail([f"forget: {', '.join(unknown)} not a machine of cluster {cluster} ({', '.join(by_name)})"])
        lines = []
        for name in names:
            removed = trusted.pop(brine_cluster.known_host_name(by_name[name]["address"], port), None)
            lines.append(f"{name}: {'host keys forgotten' if removed else 'had no trusted host key'}")
        _write_known_hosts(loaded.known_hosts, trusted)
        return _report(lines, ok=True, changes={"forgotten": names})

    offered = {}
    if known_hosts:
        source = _read_known_hosts(known_hosts)
        for node in loaded.ssh_targets:
            keys = source.get(brine_cluster.known_host_name(node["address"], port)) or source.get(node["name"])
            if keys:
                offered[node["name"]] = keys
    # The jump host first: scanning the others goes through it.
    ordered = sorted(loaded.ssh_targets, key=lambda n: n["name"] != loaded.jump_host["name"])
    for node in ordered:
        host = brine_cluster.known_host_name(node["address"], port)
        keys = offered.get(node["name"])
        if keys is None and accept_new and host not in trusted:
            try:
                keys = _scan(loaded, node)
            except (RuntimeError, subprocess.SubprocessError) as error:
                problems.append(f"{node['name']} ({node['address']}): could not read its host key: {error}")
                continue
        if keys is None:
            if host in trusted:
                lines.append(f"{node['name']}: trusted {', '.join(_fingerprint(k) for k in trusted[host].values())}")
            else:
                problems.append(f"{node['name']} ({node['address']}): no trusted host key "
                                "(give known_hosts=<file> with its key, or accept_new=True to scan it)")
            continue
        declared = node.get("host_key_fingerprint")
        if declared and declared not in {_fingerprint(k) for k in keys.values()}:
            problems.append(f"{node['name']} ({node['address']}): offers {', '.join(_fingerprint(k) for k in keys.values())}, "
                            f"not the declared host_key_fingerprint {declared}; refused")
            continue
        known = trusted.get(host)
        if known and any(known.get(t) not in (None, k) for t, k in keys.items()):
            problems.append(f"{node['name']} ({node['address']}): host key CHANGED from the trusted one; refused "
                            f"(if the node was reinstalled: salt-run cluster.trust {cluster} forget={node['name']})")
            continue
        trusted[host] = {**(known or {}), **keys}
        state = "already trusted" if known and all(known.get(t) == k for t, k in keys.items()) else "now trusted"
        lines.append(f"{node['name']}: {state} {', '.join(_fingerprint(k) for k in keys.values())}")
        # Save as we go: scanning the next nodes goes through the jump host.
        _write_known_hosts(loaded.known_hosts, trusted)
    if problems:
        return _fail(lines + problems)
    return _done(lines)


# --------------------------------------------------------------------------
# Reaching the nodes
# --------------------------------------------------------------------------

_SSH_FAILURES = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "its host key CHANGED from the trusted one; refused "
     "(if the node was reinstalled: salt-run cluster.trust {cluster} forget={node}, then trust it again)"),
    ("Host key verification failed", "its host key is not the trusted one, or none is trusted "
     "(salt-run cluster.trust {cluster} ...)"),
    ("Permission denied", "refused the SSH key {key} (is its public key in the user's authorized_keys?)"),
    ("No route to host", "no route to it"),
    ("Connection timed out", "did not answer (timed out)"),
    ("timed out", "did not answer (timed out)"),
    ("Connection refused", "refused the connection (is sshd running on port {port}?)"),
    ("Could not resolve", "its address does not resolve"),
)


def _explain(text, loaded, node):
    via = "" if node["name"] == loaded.jump_host["name"] else f" (through jump host {loaded.jump_host['name']})"
    for needle, meaning in _SSH_FAILURES:
        if needle in text:
            return f"{node['name']} ({node['address']}){via}: " + meaning.format(
                cluster=loaded.name, node=node["name"], key=loaded.private_key, port=loaded.env["ssh"]["port"])
    last = text.strip().splitlines()[-1] if text.strip() else "no answer"
    return f"{node['name']} ({node['address']}){via}: {last}"


def _reply_text(reply):
    """What salt-ssh said about a target that did not answer: ssh's stderr, or the error it returned."""
    if not isinstance(reply, dict):
        return "no answer"
    inner = reply.get("return")
    parts = [reply.get("stderr"), reply.get("stdout")]
    if isinstance(inner, dict):
        parts += [inner.get("stderr"), inner.get("stdout"), inner.get("_error")]
    elif isinstance(inner, str):
        parts.append(inner)
    return "\n".join(str(part) for part in parts if part) or "no answer"


def reach(cluster=None):
    """
    Check that every node of the cluster answers salt-ssh through the jump host, with
    host keys verified. Reports every node that does not, with the reason, and exits
    non-zero. Changes nothing on any node.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.reach demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    brine_cluster.ensure_ssh_config(loaded)
    port = loaded.env["ssh"]["port"]
    trusted = _read_known_hosts(loaded.known_hosts)
    problems = [
        f"{node['name']} ({node['address']}): no trusted host key; run salt-run cluster.trust {cluster} "
        "known_hosts=<file> (or accept_new=True)"
        for node in loaded.nodes
        if brine_cluster.known_host_name(node["address"], port) not in trusted
    ]
    if problems:
        return _fail([*problems, f"cluster {cluster}: no node was contacted"])

    import salt.client.ssh.client

    ids = {loaded.minion_id(node["name"]): node for node in loaded.nodes}
    client = salt.client.ssh.client.SSHClient(mopts=__opts__, disable_custom_roster=False)
    answers = {}
    for reply in client.cmd_iter(list(ids), "test.ping", tgt_type="list", roster="brine"):
        answers.update(reply)
    lines = []
    for minion_id, node in ids.items():
        reply = answers.get(minion_id)
        if isinstance(reply, dict) and reply.get("return") is True:
            lines.append(f"{node['name']} ({node['address']}): answers")
        else:
            problems.append(_explain(_reply_text(reply), loaded, node))
    if problems:
        return _fail(lines + problems)
    return _done([*lines, f"cluster {cluster}: all {len(ids)} nodes answer through {loaded.jump_host['name']}"])


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


def secrets(cluster=None):
    """
    Make the cluster's secrets on the deploy side, once, before any step needs
    them: the CA nodes trust for the deploy node's services, the registry's TLS
    certificate for its address, the registry's credentials, and the etcd PKI
    (its CA, each member's server and peer certificates, the health-check and
    API server client certificates). Files holding keys and passwords are 0600
    under ``.brine/clusters/<name>/``; nothing secret is printed. The
    ``brine_secrets`` pillar hands each machine only what it needs.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.secrets demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    registry_host = loaded.env["bundle"]["registry"].rsplit(":", 1)[0].strip("[]")
    file_server_host = loaded.deploy_node["address"]
    ca, ca_made = brine_pki.ensure_ca(loaded.pki_dir, "bundle-ca", f"Brine bundle CA ({cluster})")
    registry, registry_made = brine_pki.ensure_server_cert(
        loaded.pki_dir, "registry", ca, sorted({registry_host, file_server_host}))
    _, credentials_made = brine_pki.ensure_registry_credentials(loaded.registry_credentials)
    etcd_members = {node["name"]: node["address"] for node in loaded.nodes if "etcd" in node["roles"]}
    etcd = brine_pki.ensure_etcd_pki(loaded.etcd_pki_dir, cluster, etcd_members)
    made = {"bundle CA": ca_made, "registry certificate": registry_made, "registry credentials": credentials_made}

    def state(was_made):
        return "made" if was_made else "present"

    lines = [
        f"bundle CA: {state(ca_made)} ({ca.cert_path})",
        f"registry certificate for {registry_host}: {state(registry_made)} ({registry.cert_path})",
        f"registry credentials: {state(credentials_made)} ({loaded.registry_credentials}, 0600)",
        f"etcd CA: {state('etcd CA' in etcd.made)} ({etcd.ca.cert_path})",
    ]
    for member in etcd_members:
        server = f"etcd server certificate of {member}" in etcd.made
        peer = f"etcd peer certificate of {member}" in etcd.made
        lines.append(f"etcd member {member}: server certificate {state(server)}, peer certificate {state(peer)} "
                     f"({os.path.dirname(etcd.servers[member].cert_path)})")
    for name in brine_pki.ETCD_CLIENTS:
        lines.append(f"etcd client certificate {name}: {state(f'etcd client certificate {name}' in etcd.made)} "
                     f"({etcd.clients[name].cert_path})")
    names = [name for name, was_made in made.items() if was_made] + etcd.made
    return _report(lines, ok=True, changes={"made": names} if names else {})


# --------------------------------------------------------------------------
# Zero egress
# --------------------------------------------------------------------------


def egress(cluster=None, paths=None):
    """
    The zero-egress check: render every file Brine's states would write on the
    cluster's machines (one of each set of roles, with its real pillar), plus
    the files or folders in ``paths`` (third-party manifests you will apply),
    and report every image reference or URL pointing anywhere but the deploy
    node's registry and file server or inside the cluster, as
    ``<machine>:<file>:<line>: <reference> <why>``. Changes nothing anywhere.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.egress demo
        salt-run cluster.egress demo paths=/srv/manifests/addons
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    allowed = brine_egress.Allowed.for_cluster(loaded.env, loaded.nodes)
    findings, files = [], 0
    representatives = {}
    for node in loaded.ssh_targets:
        representatives.setdefault(tuple(sorted(node["roles"])), node)
    for node in representatives.values():
        try:
            rendered = brine_render.render_states(__opts__, loaded.minion_id(node["name"]))
        except RuntimeError as error:
            return _fail([str(error), f"cluster {cluster}: could not render the states to check them"])
        for item in rendered:
            files += 1
            findings += brine_egress.scan_text(f"{node['name']}:{item.path}", item.text, allowed)
    for path in _listed(paths):
        for name in _files_under(path):
            files += 1
            with open(name, encoding="utf-8", errors="replace") as handle:
                findings += brine_egress.scan_text(name, handle.read(), allowed)
    if findings:
        return _fail([*map(str, findings), f"cluster {cluster}: {len(findings)} reference(s) leave the cluster"])
    return _done([f"cluster {cluster}: no image or URL leaves the cluster ({files} files, "
                  f"{len(representatives)} kinds of machine)"])


def _listed(paths):
    if not paths:
        return []
    return [p.strip() for p in paths.split(",")] if isinstance(paths, str) else list(paths)


def _files_under(path):
    if os.path.isfile(path):
        return [path]
    return sorted(os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names)


def members(cluster=None, role=None):
    """
    The salt-ssh targets (``<node>.<cluster>``) of a cluster's nodes, or of
    those with ``role``; an empty list when the pillar does not validate (the
    orchestrate's validate step then says why). Orchestrates call this while
    they render, before any step runs.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.members demo role=etcd
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return []
    return [loaded.minion_id(n["name"]) for n in loaded.nodes if role is None or role in n["roles"]]
