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
    salt-run cluster.etcd_snapshot_stage demo
    salt-run cluster.drift demo
    salt-run cluster.jobs demo
    salt-run cluster.versions demo
    salt-run cluster.upgrade_plan demo
    salt-run cluster.list
"""

import base64
import hashlib
import json
import logging
import os
import re
import shlex
import subprocess
import time

import brine_cluster
import brine_day2
import brine_egress
import brine_etcd
import brine_manifest
import brine_pillar
import brine_pki
import brine_preflight
import brine_render
import brine_report
import brine_versions

log = logging.getLogger(__name__)

__virtualname__ = "cluster"
# ``cluster.list``: ``list`` itself would shadow the builtin in this module.
__func_alias__ = {"list_": "list"}


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
    problems = [str(problem) for problem in loaded.problems] if not loaded.valid else _bundle_problems(loaded)
    if problems:
        return _fail([*problems, f"cluster {cluster}: {len(problems)} problem(s); nothing was changed on any node"])
    return _done([*brine_pillar.warnings(loaded.pillar), f"cluster {cluster}: pillar valid ({len(loaded.nodes)} nodes)"])


#: What a setting needs the release line's bundle to carry: (setting, value) -> image name suffixes.
BUNDLE_NEEDS = {("network.plugin", "calico"): ("/calico/node", "/calico/cni", "/calico/kube-controllers")}


def _bundle_problems(loaded):
    """Settings the release line's bundle manifest cannot serve (e.g. Calico without its images)."""
    line = ".".join(str(loaded.env["kubernetes_version"]).lstrip("v").split(".")[:2])
    path = brine_manifest.manifest_path(__opts__["file_roots"]["base"][0], line)
    try:
        images = [a.name for a in brine_manifest.load_manifest(path).artifacts if a.kind == "image"]
    except brine_manifest.ManifestError as error:
        return [f"env.kubernetes_version: {error}"]
    problems = []
    for (setting, value), needed in BUNDLE_NEEDS.items():
        section, key = setting.split(".")
        if loaded.env[section][key] != value:
            continue
        missing = [suffix.lstrip("/") for suffix in needed if not any(name.endswith(suffix) for name in images)]
        if missing:
            problems.append(f"env.{setting}: {value} needs images the {line} bundle does not carry "
                            f"({', '.join(missing)}; {os.path.relpath(path, brine_cluster.repo_root(__opts__))}) "
                            f"(host-gw, or a bundle whose manifest carries them)")
    return problems


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
    certificate for its address, the registry's credentials, the etcd PKI
    (its CA, each member's server and peer certificates, the health-check and
    API server client certificates), and what kubeadm finds in place: the
    cluster CA, the front-proxy CA, the service-account keys and the bootstrap
    token (printed only as "made"/"present"; the CA's hash is public), and the
    day-2 agent's Salt keys (the masters' shared key, one per node). Files holding keys and passwords are 0600
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
    kubernetes = brine_pki.ensure_kubernetes_pki(loaded.kubernetes_pki_dir, loaded.bootstrap_token_file, cluster)
    salt_keys = brine_pki.ensure_salt_keys(loaded.salt_pki_dir, [node["name"] for node in loaded.nodes])
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
    lines.append(f"Kubernetes CA: {state(any('Kubernetes CA' in m for m in kubernetes.made))} "
                 f"({kubernetes.ca.cert_path}; joins pin {kubernetes.ca_cert_hash()})")
    for what in ("front-proxy CA", "service-account key pair", "bootstrap token"):
        lines.append(f"{what}: {state(what in kubernetes.made)}")
    lines.append(f"day-2 agent keys (salt master, a minion key per node): "
                 f"{', '.join(salt_keys) + ' made' if salt_keys else 'present'} ({loaded.salt_pki_dir})")
    names = [name for name, was_made in made.items() if was_made] + etcd.made + kubernetes.made + salt_keys
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


def setting(cluster=None, key=None):
    """
    One setting of a cluster's env, with its default filled in (dotted
    ``key``, e.g. ``network.plugin``); None when the pillar does not validate.
    Orchestrates call this while they render.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.setting demo network.plugin
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return None
    value = loaded.env
    for part in str(key).split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


# --------------------------------------------------------------------------
# Preflight
# --------------------------------------------------------------------------


def _local_client():
    """
    A LocalClient of this salt-master, made from its configuration file: a
    runner called from an orchestrate (saltutil.runner) gets options without
    the master's cache folder, and its client would fail to authenticate.
    """
    import salt.client

    conf_file = __opts__.get("conf_file") or "/etc/salt/master"
    if os.path.basename(conf_file) != "master":
        conf_file = os.path.join(os.path.dirname(conf_file), "master")
    return salt.client.get_local_client(c_path=conf_file)


def _own_master(cluster):
    """Whether this salt-run is the cluster's own salt-master (the day-2 agent): its nodes answer over their minions."""
    return __opts__.get("brine_cluster_master") == cluster


def _os_base_defaults():
    """salt/os_base/defaults.yaml: the sysctl entries the os step sets, and those it tolerates."""
    import salt.utils.yaml

    path = os.path.join(__opts__["file_roots"]["base"][0], "os_base", "defaults.yaml")
    try:
        with open(path, encoding="utf-8") as handle:
            return (salt.utils.yaml.safe_load(handle) or {}).get("os_base", {})
    except OSError:
        return {}


def _preflight_arguments(loaded, node, overrides, os_base):
    """What brine_preflight.check needs on one node, from the pillar and the requirements table."""
    need = brine_preflight.requirements_for(node["roles"], loaded.env["api_port"], overrides)
    return {
        "sysctls": os_base.get("sysctl", {}),
        "tolerate_readonly": sorted(os_base.get("tolerate_readonly", {})),
        "roles": list(node["roles"]),
        "address": str(node["address"]),
        "name": node["name"],
        "ports": need["ports"],
        "min_cpus": need["cpus"],
        "min_memory_mib": need["memory_mib"],
        "min_disk_mib": need["disk_mib"],
        "kube_proxy_mode": loaded.env["kube_proxy"]["mode"],
        "runtime": loaded.env["runtime"],
        "api_port": loaded.env["api_port"],
    }


def _egress_problems(cluster, loaded, paths):
    """The zero-egress check's findings as preflight problems, by machine."""
    import salt.exceptions

    try:
        report = egress(cluster, paths=paths)
    except (RuntimeError, salt.exceptions.SaltException) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return [f"deploy side: egress: found the states do not render ({first}), expected them to render "
                f"(salt-run cluster.secrets {cluster} first?)"]
    if report.get("retcode", 1) == 0:
        return []
    machines = {node["name"] for node in loaded.ssh_targets}
    problems = []
    for line in report["lines"][:-1] or report["lines"]:
        machine, _, rest = line.partition(":")
        if machine not in machines:
            machine, rest = "deploy side", line
        problems.append(f"{machine}: egress: found {rest.strip()}, expected only the deploy node's registry "
                        "and file server, or addresses inside the cluster")
    return problems


def preflight(cluster=None, require=None, paths=None, nodes=None):
    """
    Check every node of the cluster before anything is changed on it, and
    report every problem at once: each node checks itself (OS, CPUs, memory,
    free disk, swap, cgroups, kernel modules, free ports, its address,
    conflicting runtimes and firewalls, systemd; ``brine_preflight.check``, on
    all nodes at once over salt-ssh, read-only), then the deploy side compares
    them (unique hostnames, MACs, product_uuids and machine-ids; clock skew
    against the first master) and runs the zero-egress check. Prints
    ``<node>: <check>: found <x>, expected <y>`` per problem and exits
    non-zero if there is any. Changes nothing on any node.

    Clock skew: each node reads its clock last, just before it replies, so its
    reading was taken between the deploy side's send and receive times; the
    skew against the first master is reported only when it exceeds
    ``brine_preflight.MAX_SKEW_SECONDS`` by more than that uncertainty.

    require
        Raise or lower a role's minimums for this run: ``{role: {cpus,
        memory_mib, disk_mib}}`` (the defaults are ``brine_preflight.REQUIREMENTS``).
    paths
        Extra files or folders for the zero-egress check (see ``cluster.egress``).
    nodes
        Check only these nodes (names; a node being added): the checks across
        nodes then compare them with each other only.

    On a cluster's own salt-master (the day-2 agent) the nodes are asked over
    their minions instead of salt-ssh.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.preflight demo
        salt-run cluster.preflight demo nodes='[worker3]'
        salt-run cluster.preflight demo require='{worker: {memory_mib: 4096}}'
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    mistakes = brine_preflight.check_overrides(require)
    if mistakes:
        return _fail([*mistakes, f"cluster {cluster}: preflight not run; no node was contacted"])
    unknown = sorted(set(nodes or []) - {node["name"] for node in loaded.nodes})
    if unknown:
        return _fail([f"nodes: {', '.join(unknown)} not in the inventory of {cluster}; "
                      f"add them to pillar/clusters/{cluster}/inventory.sls first"])
    checked = [node for node in loaded.nodes if not nodes or node["name"] in nodes]

    ids = {loaded.minion_id(node["name"]): node for node in checked}
    os_base = _os_base_defaults()
    by_node = {minion_id: _preflight_arguments(loaded, node, require, os_base) for minion_id, node in ids.items()}
    answers, unanswered = {}, {}
    sent = time.time()
    # As base64 JSON: salt-ssh hands keyword arguments over as a Python repr that
    # the target parses as YAML, which would turn None into "None".
    packed = "base64:" + base64.b64encode(json.dumps(by_node).encode()).decode()
    if _own_master(cluster):
        import salt.client

        replies = _local_client().cmd_iter(
            list(ids), "brine_preflight.check", kwarg={"by_node": packed}, tgt_type="list", timeout=120)
    else:
        import salt.client.ssh.client

        brine_cluster.ensure_ssh_config(loaded)
        replies = salt.client.ssh.client.SSHClient(mopts=__opts__, disable_custom_roster=False).cmd_iter(
            list(ids), "brine_preflight.check", kwarg={"by_node": packed}, tgt_type="list", roster="brine")
    for reply in replies:
        received = time.time()
        for minion_id, data in reply.items():
            result = (data.get("return", data.get("ret"))) if isinstance(data, dict) else None
            if isinstance(result, dict) and "problems" in result and "facts" in result:
                answers[minion_id] = (result, received)
            else:
                unanswered[minion_id] = data

    problems, warnings = [], {}
    collected = []
    for minion_id, node in ids.items():
        name = node["name"]
        if minion_id not in answers:
            reason = _explain(_reply_text(unanswered.get(minion_id)), loaded, node)
            problems.append(f"{name}: preflight: found no report ({reason}), expected the node's checks to run")
            continue
        result, received = answers[minion_id]
        problems += [brine_preflight.Problem(**p).line(name) for p in result["problems"]]
        for warning in result.get("warnings", []):
            warnings.setdefault(brine_preflight.Problem(**warning), []).append(name)
        collected.append(brine_preflight.Answer(name, result["facts"], sent, received))

    masters = [node["name"] for node in checked if "master" in node["roles"]]
    reference = masters[0] if masters else None
    across = brine_preflight.cross_node_checks(collected, reference)
    for node in checked:
        problems += [problem.line(node["name"]) for problem in across.get(node["name"], [])]
    cgroup_v1 = sorted(a.node for a in collected if a.facts.get("cgroup") in ("v1", "hybrid"))
    version = tuple(int(part) for part in str(loaded.env["kubernetes_version"]).lstrip("v").split(".")[:2])
    if cgroup_v1 and version >= (1, 35):
        warnings[brine_preflight.Problem("cgroups", "cgroup v1", f"cgroup v2 (kubelet {loaded.env['kubernetes_version']} "
                                         "starts on cgroup v1 only with failCgroupV1: false)")] = cgroup_v1
    # A warning several nodes share is one line naming them all.
    warnings = [f"{problem.line(', '.join(nodes))} (warning)" for problem, nodes in warnings.items()]
    problems += _egress_problems(cluster, loaded, paths)

    offsets = {a.node: brine_preflight.clock_offset(a) for a in collected}
    if reference in offsets:
        low, high = offsets[reference]
        # By reply times (each node reads its clock just before replying): the likely skew;
        # with the whole call's round trip: the most it can be.
        likely = max(abs(lo - low) for lo, _ in offsets.values())
        most = max(max(abs(lo - high), abs(hi - low)) for lo, hi in offsets.values())
        clock = (f"; clock skew against {reference} about {likely:.1f} s by reply times, at most {most:.1f} s "
                 f"with the call's round trip (bound {brine_preflight.MAX_SKEW_SECONDS:g} s)")
    else:
        clock = ""
    if problems:
        nodes = len({line.split(":", 1)[0] for line in problems})
        return _fail([*problems, *warnings,
                      f"cluster {cluster}: {len(problems)} problem(s) on {nodes} machine(s); "
                      "nothing was changed on any node"])
    return _done([*warnings, f"cluster {cluster}: preflight passed on all {len(ids)} nodes{clock}"])


# --------------------------------------------------------------------------
# etcd restore
# --------------------------------------------------------------------------


def _etcd_defaults():
    """salt/etcd/defaults.yaml: where members keep snapshots and where a restore stages one."""
    import yaml

    with open(os.path.join(__opts__["file_roots"]["base"][0], "etcd", "defaults.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["etcd"]


def _on(loaded, node, command, timeout=120):
    """Run ``command`` on a node over SSH as the deploy side reaches it (the cluster's ssh_config, host keys checked)."""
    return subprocess.run(["ssh", "-F", loaded.ssh_config, node["name"], command], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _copy_between(loaded, source, path, target, staged, timeout=3600):
    """Stream ``path`` from node ``source`` into ``staged`` on node ``target`` (0600, atomically); return its sha256 there."""
    quoted = shlex.quote(staged)
    write = (f"umask 077 && mkdir -p {shlex.quote(os.path.dirname(staged))} && cat > {quoted}.part && "
             f"mv {quoted}.part {quoted} && sha256sum {quoted}")
    if source is target:
        proc = _on(loaded, target, f"umask 077 && mkdir -p {shlex.quote(os.path.dirname(staged))} && "
                                   f"cp {shlex.quote(path)} {quoted}.part && mv {quoted}.part {quoted} && sha256sum {quoted}",
                   timeout=timeout)
        return proc.stdout.split()[0] if proc.returncode == 0 and proc.stdout else None, proc.stderr
    reader = subprocess.Popen(["ssh", "-F", loaded.ssh_config, source["name"], f"cat {shlex.quote(path)}"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        proc = subprocess.run(["ssh", "-F", loaded.ssh_config, target["name"], write], stdin=reader.stdout,
                              capture_output=True, timeout=timeout, check=False)
    finally:
        reader.stdout.close()
        reader.wait(timeout=60)
    if reader.returncode != 0 or proc.returncode != 0 or not proc.stdout:
        return None, proc.stderr.decode(errors="replace")
    return proc.stdout.decode().split()[0], ""


def etcd_snapshot_stage(cluster=None, snapshot=None):
    """
    Put one etcd snapshot on every etcd member, for ``cluster.etcd_restore``:
    ``snapshot`` (a file name in the members' backup folder, or an absolute
    path) from the first member that has it, or by default the newest backup
    any member holds. It is copied through the deploy side (SSH, host keys
    checked) to the same staging path on every member and its sha256 checked
    there. Changes nothing else; a snapshot no member has is refused before
    anything is copied.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.etcd_snapshot_stage demo
        salt-run cluster.etcd_snapshot_stage demo snapshot=etcd-20250101T060000Z.db
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    defaults = _etcd_defaults()
    backup_dir, staged = defaults["backup"]["dir"], defaults["restore"]["snapshot"]
    etcd_members = [node for node in loaded.nodes if "etcd" in node["roles"]]
    snapshot = str(snapshot or "").strip()
    if snapshot and (".." in snapshot.split("/") or not re.match(r"^[A-Za-z0-9._/:+-]+$", snapshot)
                     or ("/" in snapshot and not snapshot.startswith("/"))):
        return _fail([f"snapshot: {snapshot!r} is not a snapshot file name (a name in {backup_dir} such as "
                      "etcd-20250101T060000Z.db, or an absolute path); no member was contacted"])
    brine_cluster.ensure_ssh_config(loaded)
    wanted = snapshot if snapshot.startswith("/") else os.path.join(backup_dir, snapshot) if snapshot else None
    found, problems = {}, []
    for node in etcd_members:
        listing = f"test -f {shlex.quote(wanted)} && echo {shlex.quote(wanted)}" if wanted else \
            f"find {shlex.quote(backup_dir)} -maxdepth 1 -name 'etcd-*.db' -type f"
        proc = _on(loaded, node, f"{listing} || true")
        if proc.returncode != 0:
            problems.append(f"{node['name']} ({node['address']}): could not list its snapshots: "
                            f"{(proc.stderr.strip().splitlines() or ['no answer'])[-1]}")
            continue
        found[node["name"]] = sorted(line for line in proc.stdout.split() if line)
    if problems:
        return _fail([*problems, "no snapshot was staged; etcd was not touched"])
    holders = [(path, name) for name, paths in found.items() for path in paths]
    if not holders:
        what = f"no member has {wanted}" if wanted else f"no member has a snapshot in {backup_dir}"
        return _fail([f"snapshot: {what} (members: {', '.join(found)}); no snapshot was staged; etcd was not touched"])
    # Snapshot names carry their UTC time: the newest sorts last; on a tie, the first member in the inventory.
    order = [node["name"] for node in etcd_members]
    path, source_name = max(holders, key=lambda item: (os.path.basename(item[0]), -order.index(item[1])))
    source = next(node for node in etcd_members if node["name"] == source_name)
    proc = _on(loaded, source, f"sha256sum {shlex.quote(path)} && stat -c %s {shlex.quote(path)}")
    if proc.returncode != 0:
        return _fail([f"{source_name}: could not read {path}: {proc.stderr.strip()}"])
    digest, size = proc.stdout.split()[0], int(proc.stdout.split()[-1])
    lines = [f"snapshot {path} on {source_name}: {size} bytes, sha256 {digest}"]
    for node in etcd_members:
        copied, error = _copy_between(loaded, source, path, node, staged)
        if copied != digest:
            problems.append(f"{node['name']} ({node['address']}): staging failed: "
                            f"{error.strip() or f'sha256 {copied}, expected {digest}'}")
        else:
            lines.append(f"{node['name']}: staged as {staged}, sha256 verified")
    if problems:
        return _fail([*lines, *problems, "etcd was not touched"])
    return _report(lines, ok=True, changes={"snapshot": path, "source": source_name, "sha256": digest,
                                            "staged": {"path": staged, "on": [node["name"] for node in etcd_members]}})


# --------------------------------------------------------------------------
# Day two: the agent's payload, onboarding, drift, jobs
# --------------------------------------------------------------------------


def agent_payload(cluster=None):
    """
    Pack what a cluster's masters run Brine from (see ``_utils/brine_day2.py``)
    into ``.brine/fileserver/brine-day2/brine.tar.gz``, served to salt-ssh as
    ``salt://brine-day2/brine.tar.gz``. The same tree gives the same bytes, so a
    re-deploy ships nothing new. Reports a change only when the payload changed.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.agent_payload demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    fileserver = os.path.join(brine_cluster.state_root(__opts__), "fileserver")
    roots = __opts__.get("file_roots", {}).get("base", [])
    if os.path.abspath(fileserver) not in [os.path.abspath(root) for root in roots]:
        return _fail([f"file_roots: {fileserver} is not a file root of this salt-run; "
                      "run `make salt-config` (it writes etc/salt/master.d/paths.conf)"])
    version = brine_cluster.brine_version(__opts__)
    path, digest, changed = brine_day2.write_payload(brine_cluster.repo_root(__opts__), fileserver, version)
    line = f"day-2 agent payload: Brine {version}, sha256 {digest[:16]}... ({path})"
    return _report([line + (" - written" if changed else " - unchanged")], ok=True,
                   changes={"payload": digest} if changed else {})


def _onboarding_log(loaded, decision, minion_id, finger, why):
    """Record an onboarding decision once per minion, key and decision (a pending minion asks every few seconds)."""
    last = [e for e in brine_day2.read_events(loaded.state_dir, "onboarding") if e.get("minion") == minion_id]
    if last and last[-1].get("decision") == decision and last[-1].get("finger") == finger:
        return
    brine_day2.append_event(loaded.state_dir, "onboarding",
                            {"minion": minion_id, "decision": decision, "finger": finger, "why": why})
    (log.warning if decision == "refused" else log.info)("minion %s %s: %s", minion_id, decision, why)


def minion_key_review(minion_id=None, pub=None):
    """
    Decide on a pending minion key (the ``salt/auth`` reactor on a cluster's own
    salt-master): accepted only when ``<node>.<cluster>`` names this cluster and
    a node of its inventory, and the key's sha256 fingerprint is the one
    expected - the key cluster.secrets made for the node, or the inventory's
    ``minion_fingerprint``. Anything else stays pending, and the refusal is
    logged once (``onboarding.jsonl`` in the cluster's state folder; also
    ``salt-run cluster.onboarding <name>``). Never ``auto_accept``.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.minion_key_review worker3.demo
    """
    node_name, _, cluster = str(minion_id or "").partition(".")
    own = __opts__.get("brine_cluster_master")
    pki = __opts__["pki_dir"]
    pending = os.path.join(pki, "minions_pre", str(minion_id))
    if pub is None and os.path.isfile(pending):
        with open(pending, encoding="utf-8") as handle:
            pub = handle.read()
    finger = brine_pki.salt_finger(pub) if pub else ""
    if not own or cluster != own:
        loaded = _load(own) if own else None
        if loaded is not None:
            _onboarding_log(loaded, "refused", minion_id, finger, f"not a minion of cluster {own} (ids are <node>.{own})")
        return _fail([f"{minion_id}: refused: not a minion of cluster {own}"])
    loaded = _load(cluster)
    node = next((n for n in loaded.nodes if n["name"] == node_name), None) if loaded.valid else None
    if node is None:
        _onboarding_log(loaded, "refused", minion_id, finger, "not in the inventory")
        return _fail([f"{minion_id}: refused: {node_name} is not in the inventory of {cluster}"])
    made = os.path.join(loaded.salt_pki_dir, "minions", node_name + ".pub")
    expected = node.get("minion_fingerprint")
    if not expected and os.path.isfile(made):
        with open(made, encoding="utf-8") as handle:
            expected = brine_pki.salt_finger(handle.read())
    if not expected:
        _onboarding_log(loaded, "refused", minion_id, finger,
                        "no fingerprint to check: set minion_fingerprint of this node in the inventory")
        return _fail([f"{minion_id}: refused: set inventory minion_fingerprint for {node_name} "
                      f"(`salt-call --local key.finger hash_type=sha256` on the node)"])
    if finger != expected:
        _onboarding_log(loaded, "refused", minion_id, finger, f"key fingerprint {finger}, expected {expected}")
        return _fail([f"{minion_id}: refused: its key's fingerprint is not the one expected for {node_name}"])
    if not os.path.isfile(pending):
        return _done([f"{minion_id}: no pending key (already accepted)"])
    import salt.key

    with open(pending, encoding="utf-8") as handle:
        if brine_pki.salt_finger(handle.read()) != expected:
            return _fail([f"{minion_id}: refused: the pending key changed while it was checked"])
    salt.key.get_key(__opts__).accept(match=str(minion_id), include_rejected=False, include_denied=False)
    _onboarding_log(loaded, "accepted", minion_id, finger, "in the inventory, fingerprint matches")
    return _report([f"{minion_id}: key accepted"], ok=True, changes={"accepted": minion_id})


def _kubernetes_node_ready(name):
    proc = subprocess.run(["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "get", "node", name, "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return False
    conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def onboard(minion_id=None, node=None):
    """
    Take a node of the inventory from a connected minion to a Ready Kubernetes
    node (the ``salt/minion/*/start`` and ``brine/node/onboard`` reactors on a
    cluster's own salt-master). A minion outside the inventory is refused and
    logged; for a node of the inventory the work starts as a process of its
    own (``cluster.onboard_node``, its output appended to ``onboard.log`` in the
    cluster's state folder), so the reactor is free at once.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.onboard worker3.demo
        salt-call event.send brine/node/onboard node=worker3   # on any node of the cluster
    """
    cluster = __opts__.get("brine_cluster_master")
    if not cluster:
        return _fail(["cluster.onboard runs on a cluster's own salt-master (the day-2 agent)"])
    if node and not minion_id:
        minion_id = f"{node}.{cluster}"
    node_name, _, of = str(minion_id or "").partition(".")
    loaded = _load(cluster)
    entry = next((n for n in loaded.nodes if n["name"] == node_name), None) if loaded.valid else None
    if of != cluster or entry is None:
        _onboarding_log(loaded, "refused", minion_id, "", "not in the inventory: not joined")
        return _fail([f"{minion_id}: not a node of the inventory of {cluster}: not joined"])
    import sys

    salt_run = os.path.join(os.path.dirname(sys.executable), "salt-run")
    config_dir = os.path.dirname(__opts__.get("conf_file") or "/etc/salt/master")
    os.makedirs(loaded.state_dir, mode=0o700, exist_ok=True)
    with open(os.path.join(loaded.state_dir, "onboard.log"), "a", encoding="utf-8") as out:
        subprocess.Popen([salt_run, "-c", config_dir, "cluster.onboard_node", f"minion_id={minion_id}",
                          f"asked={bool(node)}"],
                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return _done([f"{minion_id}: onboarding started (cluster.onboard_node)"])


def onboard_node(minion_id=None, asked=False):
    """
    The onboarding of one node (started by :func:`onboard`): Brine's modules
    synced to its minion, then, unless it already is a Ready node, and only on
    the acting master (the first whose salt-master answers: every master gets
    a minion's start; an explicit request, ``asked``, goes to one master, which
    acts), ``cluster.node_add`` for it as a cluster job
    (``salt-run cluster.jobs <name>``). One onboarding of a node at a time on a
    master: a second request while one runs is told so.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.onboard_node worker3.demo
    """
    cluster = __opts__.get("brine_cluster_master")
    node_name = str(minion_id or "").partition(".")[0]
    loaded = _load(cluster)
    entry = next((n for n in loaded.nodes if n["name"] == node_name), None) if loaded.valid else None
    if entry is None:
        return _fail([f"{minion_id}: not a node of the inventory of {cluster}: not joined"])
    import salt.client
    import salt.runner

    local = _local_client()
    local.cmd(str(minion_id), "saltutil.sync_all", timeout=120)
    masters = [str(n["address"]) for n in loaded.nodes if "master" in n["roles"]]
    me = str(__opts__.get("interface"))
    acting = me if str(asked).lower() == "true" else \
        brine_day2.acting_master(masters, me, int(__opts__.get("ret_port", 4506)))
    if acting != me:
        return _done([f"{minion_id}: modules synced; master {acting} acts on its onboarding"])
    import fcntl

    lock = open(os.path.join(loaded.state_dir, f"onboard-{node_name}.lock"), "w", encoding="utf-8")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        return _done([f"{minion_id}: an onboarding of {node_name} is already running here"])
    if _kubernetes_node_ready(node_name):
        return _done([f"{minion_id}: modules synced; already a Ready node"])
    if "master" in entry["roles"] or "etcd" in entry["roles"]:
        _onboarding_log(loaded, "refused", minion_id, "", "masters and etcd members join by cluster.deploy")
        return _fail([f"{minion_id}: a master or etcd member joins by cluster.deploy from the deploy side"])
    job = brine_day2.Job(loaded.state_dir, "node_add", node_name)
    job.log(f"onboarding {minion_id} on master {acting}")
    job.start()
    began = time.time()
    master = next(n["name"] for n in loaded.nodes if str(n["address"]) == acting)
    result = salt.runner.RunnerClient(__opts__).cmd(
        "state.orchestrate", ["cluster.node_add"],
        kwarg={"pillar": {"cluster": cluster, "node": node_name, "master": master}}, full_return=True)
    data = (result or {}).get("return", {}).get("data", {}) if isinstance(result, dict) else {}
    steps = {}
    for host in data.values():
        if isinstance(host, dict):
            steps.update({s["__id__"]: s for s in host.values() if isinstance(s, dict) and "__id__" in s})
    with open(os.path.join(job.folder, "orchestrate.json"), "w", encoding="utf-8") as handle:
        json.dump(steps, handle, indent=1, default=str)
    failed = sorted(step_id for step_id, step in steps.items() if step.get("result") is False
                    and not str(step.get("comment", "")).startswith("One or more requisite failed"))
    for step_id, step in sorted(steps.items(), key=lambda item: item[1].get("__run_num__", 0)):
        job.log(f"{'FAILED' if step.get('result') is False else 'ok'} {step_id} "
                f"({step.get('duration', 0) / 1000:.1f} s)")
    ok = bool(steps) and not any(step.get("result") is False for step in steps.values())
    job.end(ok, f"{node_name} joined and Ready" if ok else f"failed at {', '.join(failed) or 'rendering'}")
    records, plan = brine_report.records_from_orchestrate(steps, began, master, prefix="node-add-")
    for record in records:
        brine_report.record_step(job.folder, record)
    report_path, _ = brine_report.write(job.folder, job.record, plan, _report_facts(loaded, cluster),
                                        _secret_values(loaded))
    job.log(f"report {report_path}")
    lines = [f"{minion_id}: cluster job {job.id}: {job.record['state']} ({job.record['summary']})"]
    return _report(lines, ok=ok, changes={"job": job.id} if ok else {})


def jobs(cluster=None):
    """
    The cluster jobs recorded where this salt-run runs (a cluster's own
    salt-master, or the deploy side): id, state, start and end times.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.jobs demo
    """
    loaded = _load(cluster)
    found = brine_day2.jobs(loaded.state_dir)
    lines = [f"{j['id']}: {j['state']} (started {j['started'] or '-'}, ended {j['ended'] or '-'})"
             + (f": {j['summary']}" if j.get("summary") else "") for j in found]
    return _done(lines or [f"cluster {cluster}: no jobs recorded here"])


def list_(clusters=None):
    """
    Every cluster this salt-run holds the pillar of (the deploy node, or a
    cluster's own salt-master): its Kubernetes version and node counts as
    declared, whether the declaration validates, and its last cluster job
    (kind, state, when). ``clusters``: only these names.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.list
    """
    names = brine_cluster.cluster_names(__opts__)
    if clusters:
        names = [n for n in names if n in (clusters if isinstance(clusters, list) else str(clusters).split(","))]
    rows = [("cluster", "version", "masters", "workers", "pillar", "last job")]
    for name in names:
        loaded = _load(name)
        if loaded.valid:
            masters = sum(1 for n in loaded.nodes if "master" in n["roles"])
            workers = sum(1 for n in loaded.nodes if "master" not in n["roles"])
            version, pillar = str(loaded.env["kubernetes_version"]), "valid"
        else:
            masters = workers = "?"
            version, pillar = "?", "INVALID (salt-run cluster.validate " + name + ")"
        found = brine_day2.jobs(loaded.state_dir)
        last = found[-1] if found else None
        job = (f"{last['kind']} {last['state']} {last.get('ended') or last.get('started') or last.get('queued')}"
               if last else "none")
        rows.append((name, version, str(masters), str(workers), pillar, job))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return _done(lines if names else ["no cluster declared under pillar/clusters/"])


def onboarding(cluster=None):
    """
    The onboarding decisions of a cluster's own salt-master: every minion key
    accepted or refused, when and why.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.onboarding demo
    """
    loaded = _load(cluster)
    events = brine_day2.read_events(loaded.state_dir, "onboarding")
    return _done([f"{e['time']} {e['minion']}: {e['decision']} ({e['why']})" for e in events]
                 or [f"cluster {cluster}: no onboarding recorded here"])


def drift(cluster=None, limit=50):
    """
    What drifted on the nodes of ``cluster`` and what was done: every node's
    recent scheduled highstates (``brine_drift.history``), per node the runs
    that found drift, when, each drifted state and whether it was restored or
    only reported (env.day2.report_only). Asked over the minions on a
    cluster's own salt-master, over salt-ssh elsewhere.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.drift demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    ids = [loaded.minion_id(n["name"]) for n in loaded.nodes]
    if _own_master(cluster):
        import salt.client

        replies = _local_client().cmd(ids, "brine_drift.history", kwarg={"limit": limit},
                                                                   tgt_type="list", timeout=60)
        history = {mid.split(".")[0]: reply for mid, reply in replies.items() if isinstance(reply, list)}
    else:
        import salt.client.ssh.client

        brine_cluster.ensure_ssh_config(loaded)
        client = salt.client.ssh.client.SSHClient(mopts=__opts__, disable_custom_roster=False)
        history = {}
        for reply in client.cmd_iter(ids, "brine_drift.history", kwarg={"limit": limit}, tgt_type="list",
                                     roster="brine"):
            for mid, data in reply.items():
                inner = data.get("return") if isinstance(data, dict) else None
                if isinstance(inner, list):
                    history[mid.split(".")[0]] = inner
    missing = sorted(n["name"] for n in loaded.nodes if n["name"] not in history)
    lines = brine_day2.drift_summary(history)
    if missing:
        lines.append(f"no history from: {', '.join(missing)}")
    return _report(lines, ok=not missing)


def _masters_answering(loaded, leaving=None):
    masters = [n for n in loaded.nodes if "master" in n["roles"] and n["name"] != leaving]
    me = str(__opts__.get("interface"))
    acting = brine_day2.acting_master([str(n["address"]) for n in masters], me, int(__opts__.get("ret_port", 4506)))
    return next((n for n in masters if str(n["address"]) == acting), None)


KUBECTL = "kubectl --kubeconfig=/etc/kubernetes/admin.conf"


def _running_versions(loaded):
    """
    ``(control_plane, kubelets, problem)`` of the running cluster, read with
    kubectl on the first master that answers: each master's kube-apiserver
    version (its image's tag) and every registered node's kubelet version.
    ``({}, {}, None)`` when no master holds admin.conf yet (not deployed).
    """
    command = (f"[ -f /etc/kubernetes/admin.conf ] || {{ echo NOT-INITIALISED; exit 0; }}; "
               f"{KUBECTL} get nodes -o json && echo ---- && "
               f"{KUBECTL} -n kube-system get pods -l component=kube-apiserver -o json")
    said = []
    for node in (n for n in loaded.nodes if "master" in n["roles"]):
        if _own_master(loaded.name):
            reply = _local_client().cmd(loaded.minion_id(node["name"]), "cmd.run_all", [command],
                                        kwarg={"python_shell": True}, timeout=60)
            reply = reply.get(loaded.minion_id(node["name"])) or {}
            code, out, err = reply.get("retcode", 1), reply.get("stdout", ""), reply.get("stderr", "no answer")
        else:
            try:
                proc = _on(loaded, node, command, timeout=60)
            except subprocess.TimeoutExpired:
                said.append(f"{node['name']}: no answer in 60 s")
                continue
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        if code != 0:
            said.append(f"{node['name']}: {(err or out).strip().splitlines()[-1:] or ['exit ' + str(code)]}")
            continue
        if out.strip() == "NOT-INITIALISED":
            continue
        nodes_json, pods_json = out.split("\n----\n", 1)
        kubelets = {item["metadata"]["name"]: item["status"]["nodeInfo"]["kubeletVersion"]
                    for item in json.loads(nodes_json)["items"]}
        control_plane = {}
        for pod in json.loads(pods_json)["items"]:
            image = pod["spec"]["containers"][0]["image"]
            control_plane[pod["spec"].get("nodeName", "?")] = image.rsplit(":", 1)[-1].split("@")[0]
        return control_plane, kubelets, None
    if said:
        return {}, {}, "no master could be asked: " + "; ".join(said)
    return {}, {}, None


def versions(cluster=None):
    """
    The Kubernetes versions the cluster runs: each master's API server and
    every node's kubelet, beside the pillar's ``env.kubernetes_version``.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.versions demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    control_plane, kubelets, problem = _running_versions(loaded)
    if problem:
        return _fail([f"cluster {cluster}: {problem}"])
    if not control_plane:
        return _done([f"cluster {cluster}: not running yet (no master holds admin.conf); "
                      f"the pillar says {loaded.env['kubernetes_version']}"])
    return _done([f"pillar: {loaded.env['kubernetes_version']}",
                  *(f"{name}: API server {control_plane.get(name, '-')}, kubelet {kubelets.get(name, 'not registered')}"
                    for name in sorted(set(control_plane) | set(kubelets)))])


def upgrade_plan(cluster=None):
    """
    What ``cluster.upgrade`` will do, and whether it may: the versions running
    against the pillar's ``env.kubernetes_version``. Refuses (non-zero, nothing
    changed) a skip of more than one minor, a downgrade, or a cluster not yet
    deployed. The first step of ``cluster.upgrade`` after validate and reach.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.upgrade_plan demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    control_plane, kubelets, problem = _running_versions(loaded)
    if problem:
        return _fail([f"cluster {cluster}: {problem}"])
    problems, lines, to_do = brine_versions.upgrade_plan(loaded.env["kubernetes_version"], control_plane, kubelets)
    if problems:
        return _fail([*problems, f"cluster {cluster}: not upgraded; nothing was changed"])
    # As a change when there is something to do: cluster.upgrade pauses drift
    # correction only then (onchanges), so a run on an upgraded cluster changes nothing.
    return _report(lines, ok=True, changes={"upgrade": lines[-1]} if to_do else None)


def version_unchanged(cluster=None):
    """
    ``cluster.deploy``'s guard: a running cluster whose versions differ from
    the pillar's ``env.kubernetes_version`` is not deployed over (that would
    replace kubelet under a control plane of another version); the way there
    is ``cluster.upgrade``. Passes on a cluster not yet running.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.version_unchanged demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    control_plane, kubelets, problem = _running_versions(loaded)
    if problem:
        # An API that does not answer (a deploy that failed before it came up):
        # the deploy's own steps bring it up; nothing here to compare.
        return _done([f"cluster {cluster}: versions not read ({problem}); not compared"])
    target = "v" + str(loaded.env["kubernetes_version"]).lstrip("v")
    if not control_plane:
        return _done([f"cluster {cluster}: no control plane running yet; it will run {target}"])
    other = sorted(f"{name} {what} {version}" for what, found in (("API server", control_plane), ("kubelet", kubelets))
                   for name, version in found.items() if version != target)
    if other:
        return _fail([f"cluster {cluster} runs other versions than env.kubernetes_version {target}: {', '.join(other)}",
                      f"move it with: salt-run state.orchestrate cluster.upgrade pillar='{{\"cluster\": \"{cluster}\"}}' "
                      f"(or set env.kubernetes_version back to what it runs); nothing was changed"])
    return _done([f"cluster {cluster}: every API server and kubelet runs {target}"])


def acting_master(cluster=None, leaving=None):
    """
    The minion id of the master that acts for the cluster now: the first master
    of the inventory (other than ``leaving``) whose salt-master answers - the
    same choice every master makes for an onboarding. None when none answers.
    Orchestrates call this while they render.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.acting_master demo leaving=master1
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return None
    node = _masters_answering(loaded, leaving)
    return loaded.minion_id(node["name"]) if node else None


def etcd_endpoints(cluster=None, leaving=None):
    """
    The etcd client URLs of the cluster's members (but ``leaving``), comma
    separated, for etcdctl. Orchestrates call this while they render.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.etcd_endpoints demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return ""
    port = _etcd_defaults()["client_port"]
    return ",".join(brine_etcd.client_url(str(n["address"]), port) for n in loaded.nodes
                    if "etcd" in n["roles"] and n["name"] != leaving)


def inventory_remove(cluster=None, node=None):
    """
    Take ``node`` out of the cluster's inventory on this master and every other
    master that answers (the last step of ``cluster.node_remove``). The
    inventory must be plain YAML (as cluster.deploy ships it). The deploy
    side's copy is not touched: the line printed says to update it there too.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.inventory_remove demo worker3
    """
    import yaml

    loaded = _load(cluster)
    path = os.path.join(brine_cluster.pillar_root(__opts__), "clusters", str(cluster), "inventory.sls")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    if "{%" in text or "{{" in text:
        return _fail([f"{path}: holds Jinja; take {node} out of it by hand"])
    data = yaml.safe_load(text)
    nodes = data["inventory"]["nodes"]
    kept = [entry for entry in nodes if entry.get("name") != node]
    if len(kept) == len(nodes):
        return _done([f"{node}: not in the inventory of {cluster} (already removed)"])
    data["inventory"]["nodes"] = kept
    new_text = f"# Written by cluster.node_remove ({brine_day2.now()}: {node} removed).\n" + \
        yaml.safe_dump(data, sort_keys=False)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(new_text)
    os.replace(path + ".tmp", path)
    others = [loaded.minion_id(n["name"]) for n in loaded.nodes
              if "master" in n["roles"] and str(n["address"]) != str(__opts__.get("interface")) and n["name"] != node]
    lines = [f"{node}: out of the inventory of {cluster} on this master"]
    if others and _own_master(cluster):

        replies = _local_client().cmd(
            others, "file.write", [path, new_text.rstrip("\n")], tgt_type="list", timeout=60)
        for other in others:
            lines.append(f"{other}: {'updated' if other in replies else 'did not answer: update its ' + path}")
    lines.append(f"declare the same on the deploy side: remove {node} from pillar/clusters/{cluster}/inventory.sls")
    return _report(lines, ok=True, changes={"removed": node})


def certs_expiring(minion_id=None, certificates=None):
    """
    Record a node's warning of certificates close to expiry (the
    ``brine/certs/expiring`` reactor): logged at warning level and kept in
    ``certs.jsonl`` of the cluster's state folder for ``cluster.status``.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.certs_expiring worker1.demo certificates='[...]'
    """
    cluster = str(minion_id or "").partition(".")[2] or __opts__.get("brine_cluster_master")
    loaded = _load(cluster)
    soon = certificates or []
    for item in soon:
        log.warning("%s: certificate %s (%s) expires %s, in %s days; renew: salt-run state.orchestrate "
                    "cluster.certs_renew pillar='{\"cluster\": \"%s\"}'", minion_id, item.get("where"),
                    item.get("subject"), item.get("not_after"), item.get("days_left"), cluster)
    brine_day2.append_event(loaded.state_dir, "certs", {"minion": minion_id, "expiring": soon})
    return _done([f"{minion_id}: {len(soon)} certificate(s) close to expiry recorded"])


def status(cluster=None):
    """
    The cluster as it is now, in one screen: every node with its Kubernetes
    state and version, its salt-minion, its soonest certificate expiry and its
    last drift-correction run; etcd's health and each member's newest
    snapshot; the last cluster jobs. On a cluster's own salt-master (over the
    minions).

    CLI Example:

    .. code-block:: bash

        salt-run cluster.status demo
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    if not _own_master(cluster):
        return _fail(["cluster.status runs on a cluster's own salt-master (the day-2 agent); "
                      f"from here: ssh to a master of {cluster} and run it there"])

    local = _local_client()
    ids = [loaded.minion_id(n["name"]) for n in loaded.nodes]
    certs = local.cmd(ids, "brine_certs.expiry", tgt_type="list", timeout=30)
    drift_runs = local.cmd(ids, "brine_drift.history", kwarg={"limit": 1}, tgt_type="list", timeout=30)
    backups = local.cmd([loaded.minion_id(n["name"]) for n in loaded.nodes if "etcd" in n["roles"]], "cmd.run",
                        ["ls -1t /var/lib/etcd-backup/etcd-*.db 2>/dev/null | head -1 | xargs -r stat -c '%y %n'"],
                        kwarg={"python_shell": True}, tgt_type="list", timeout=30)
    proc = subprocess.run(["kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "get", "nodes", "-o", "json"],
                          capture_output=True, text=True, timeout=60, check=False)
    kube = {}
    if proc.returncode == 0:
        for item in json.loads(proc.stdout)["items"]:
            ready = next((c["status"] for c in item["status"].get("conditions", []) if c["type"] == "Ready"), "?")
            kube[item["metadata"]["name"]] = (f"{'Ready' if ready == 'True' else 'NotReady'} "
                                              f"{item['status']['nodeInfo']['kubeletVersion']}")
    lines = [f"cluster {cluster}: Kubernetes {loaded.env['kubernetes_version']}, {len(loaded.nodes)} nodes"
             + ("" if proc.returncode == 0 else f" (API: {proc.stderr.strip()[-200:]})")]
    for node in loaded.nodes:
        mid = loaded.minion_id(node["name"])
        soonest = certs.get(mid)
        cert = (f"certs: soonest {soonest[0]['days_left']} days ({soonest[0]['where']})"
                if isinstance(soonest, list) and soonest else "certs: -")
        last = drift_runs.get(mid)
        drift = (f"drift: last run {last[-1]['time']}, {len(last[-1]['drifted'])} drifted"
                 if isinstance(last, list) and last else "drift: no run yet")
        minion_state = "minion up" if mid in certs else "minion DOWN"
        lines.append(f"  {node['name']:<12} {','.join(node['roles']):<14} {kube.get(node['name'], 'not a node'):<22} "
                     f"{minion_state}; {cert}; {drift}")
    for mid, said in sorted(backups.items()):
        lines.append(f"  etcd snapshot on {mid.split('.')[0]}: {said or 'none yet'}")
    for event in brine_day2.read_events(loaded.state_dir, "certs")[-5:]:
        if event.get("expiring"):
            first = event["expiring"][0]
            lines.append(f"  WARNING {event['time']} {event['minion']}: {first['where']} expires in "
                         f"{first['days_left']} days ({len(event['expiring'])} certificate(s) under the threshold)")
    for job in brine_day2.jobs(loaded.state_dir)[-5:]:
        lines.append(f"  job {job['id']}: {job['state']}" + (f" ({job['summary']})" if job.get("summary") else ""))
    return _done(lines)


# --------------------------------------------------------------------------
# Cluster jobs and their reports
# --------------------------------------------------------------------------


def job_begin(cluster=None, kind="deploy"):
    """
    Open a cluster job for an orchestrate run (``cluster.deploy`` calls this
    while it renders): its folder ``.brine/clusters/<name>/jobs/<id>/``, which
    the steps record into and the report is written to. Returns the folder.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.job_begin demo kind=deploy
    """
    loaded = _load(cluster)
    if str(cluster) not in brine_cluster.cluster_names(__opts__):
        return ""
    job = brine_day2.Job(loaded.state_dir, kind, str(cluster))
    job.start()
    return job.folder


def _secret_values(loaded):
    """Every secret value the deploy side holds for the cluster (what a report must never show)."""
    values = []
    for top in ("secrets", os.path.join("pki")):
        for folder, _, names in os.walk(os.path.join(loaded.state_dir, top)):
            for name in names:
                if not (name.endswith((".key", ".pem")) or top == "secrets"):
                    continue
                try:
                    with open(os.path.join(folder, name), encoding="utf-8") as handle:
                        text = handle.read()
                except (OSError, UnicodeDecodeError):
                    continue
                if name.endswith(".json"):
                    try:
                        values += [str(v) for v in json.loads(text).values()]
                    except ValueError:
                        values.append(text.strip())
                else:
                    values.append(text.strip())
    return values


def _report_facts(loaded, cluster):
    """What a job's report says about the cluster: versions, bundle, modes, nodes."""
    env = loaded.env if loaded.valid else {}
    return {"cluster": str(cluster), "Kubernetes": str(env.get("kubernetes_version", "?")),
            "bundle": str((env.get("bundle") or {}).get("file") or "default for the release line"),
            "registry": str((env.get("bundle") or {}).get("registry", "?")),
            "network": str((env.get("network") or {}).get("plugin", "?")),
            "kube-proxy": str((env.get("kube_proxy") or {}).get("mode", "?")),
            "nodes": ", ".join(f"{n['name']} ({','.join(n['roles'])})" for n in loaded.nodes) if loaded.valid else "",
            "Brine": brine_cluster.brine_version(__opts__)}


def report_write(cluster=None, job=None, plan=None):
    """
    Write the report of cluster job ``job`` (its folder): report.html and
    timeline.png, with the final summary table; the job is marked done or
    failed from what its steps recorded. No secret reaches the report: every
    secret value of the cluster is scrubbed from it.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.report_write demo job=.brine/clusters/demo/jobs/<id>
    """
    loaded = _load(cluster)
    if not job:
        return _done([f"no job: there is no cluster {cluster}"])
    if not os.path.isdir(job):
        return _fail([f"job: {job!r} is not a job folder"])
    with open(os.path.join(job, "job.json"), encoding="utf-8") as handle:
        record = json.load(handle)
    steps = brine_report.load_steps(job)
    failed = sorted({s["step"] for s in steps if s.get("result") is False})
    plan = list(plan or [])
    ran = {s["step"] for s in steps}
    not_run = [p for p in plan if p not in ran]
    ok = bool(steps) and not failed and not not_run
    record.update(state="done" if ok else "failed", ended=brine_day2.now(),
                  summary="every step ok" if ok else
                  f"failed at {', '.join(failed)}" if failed else f"did not run: {', '.join(not_run)}")
    with open(os.path.join(job, "job.json"), "w", encoding="utf-8") as handle:
        json.dump(record, handle, indent=1)
    report_path, _ = brine_report.write(job, record, plan, _report_facts(loaded, cluster), _secret_values(loaded))
    table = brine_report.summary_table(brine_report.summary(steps, plan))
    return _report([*table.splitlines(), f"job {record['id']}: {record['state']}; report {report_path}"], ok=True)


def report(cluster=None, job=None):
    """
    The path of a cluster job's HTML report (``job``: an id; default the newest
    job that has one). Open it in a browser: one file, the timeline inside.

    CLI Example:

    .. code-block:: bash

        salt-run cluster.report demo
        salt-run cluster.report demo 20261127T101500Z-deploy-demo-1a2b3c
    """
    loaded = _load(cluster)
    found = [j for j in brine_day2.jobs(loaded.state_dir)
             if os.path.isfile(os.path.join(loaded.state_dir, "jobs", j["id"], brine_report.REPORT))]
    if job:
        found = [j for j in found if j["id"] == job]
    if not found:
        return _fail([f"cluster {cluster}: no report " + (f"for job {job}" if job else "yet") +
                      f" under {os.path.join(loaded.state_dir, 'jobs')}"])
    chosen = found[-1]
    return _done([os.path.join(loaded.state_dir, "jobs", chosen["id"], brine_report.REPORT)])
