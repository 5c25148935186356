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
import brine_egress
import brine_pillar
import brine_pki
import brine_preflight
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
    problems = [str(problem) for problem in loaded.problems] if not loaded.valid else _bundle_problems(loaded)
    if problems:
        return _fail([*problems, f"cluster {cluster}: {len(problems)} problem(s); nothing was changed on any node"])
    return _done([f"cluster {cluster}: pillar valid ({len(loaded.nodes)} nodes)"])


#: What a setting needs the release line's bundle to carry: (setting, value) -> image name suffixes.
BUNDLE_NEEDS = {("network.plugin", "calico"): ("/calico/node", "/calico/cni", "/calico/kube-controllers")}


def _bundle_problems(loaded):
    """Settings the release line's bundle manifest cannot serve (e.g. Calico without its images)."""
    import brine_manifest  # pylint: disable=import-outside-toplevel

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
    token (printed only as "made"/"present"; the CA's hash is public). Files holding keys and passwords are 0600
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
    names = [name for name, was_made in made.items() if was_made] + etcd.made + kubernetes.made
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


# --------------------------------------------------------------------------
# Preflight
# --------------------------------------------------------------------------


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


def preflight(cluster=None, require=None, paths=None):
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

    CLI Example:

    .. code-block:: bash

        salt-run cluster.preflight demo
        salt-run cluster.preflight demo require='{worker: {memory_mib: 4096}}'
    """
    loaded = _load(cluster)
    if not loaded.valid:
        return validate(cluster)
    mistakes = brine_preflight.check_overrides(require)
    if mistakes:
        return _fail([*mistakes, f"cluster {cluster}: preflight not run; no node was contacted"])
    brine_cluster.ensure_ssh_config(loaded)

    import salt.client.ssh.client

    ids = {loaded.minion_id(node["name"]): node for node in loaded.nodes}
    os_base = _os_base_defaults()
    by_node = {minion_id: _preflight_arguments(loaded, node, require, os_base) for minion_id, node in ids.items()}
    client = salt.client.ssh.client.SSHClient(mopts=__opts__, disable_custom_roster=False)
    answers, unanswered = {}, {}
    sent = time.time()
    # As base64 JSON: salt-ssh hands keyword arguments over as a Python repr that
    # the target parses as YAML, which would turn None into "None".
    packed = "base64:" + base64.b64encode(json.dumps(by_node).encode()).decode()
    for reply in client.cmd_iter(list(ids), "brine_preflight.check", kwarg={"by_node": packed},
                                 tgt_type="list", roster="brine"):
        received = time.time()
        for minion_id, data in reply.items():
            result = data.get("return") if isinstance(data, dict) else None
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

    masters = [node["name"] for node in loaded.nodes if "master" in node["roles"]]
    reference = masters[0] if masters else None
    across = brine_preflight.cross_node_checks(collected, reference)
    for node in loaded.nodes:
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
