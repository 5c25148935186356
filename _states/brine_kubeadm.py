"""
A node's membership of its Kubernetes cluster, through kubeadm.

- ``brine_kubeadm.reset_if_incomplete``: a node that kubeadm began to bring in
  and did not finish (a run killed mid-join) is reset, so the run resumes from a
  clean node; a member or an untouched node is left alone.
- ``brine_kubeadm.joined``: ``kubeadm init`` on the first master, ``kubeadm
  join`` (``--control-plane`` on masters) elsewhere, each once: a node with
  ``/etc/kubernetes/kubelet.conf`` is a member and nothing runs. A joining node
  first brings up its API load balancer (see :func:`joined`).
- ``brine_kubeadm.token_valid``: the cluster's bootstrap token exists and has
  at least 30 minutes left (first master, before joins).
- ``brine_kubeadm.api_ready``: the API answers ``/readyz`` through this node's
  load balancer.
- ``brine_kubeadm.nodes_ready``: every named node is registered and Ready.
- ``brine_kubeadm.upgraded``, ``drained``, ``upgrade_finished``: a node's part
  of ``cluster.upgrade`` - kubeadm's upgrade on the node, the node drained
  before its kubelet is replaced, then Ready on the new kubelet and uncordoned.

The bootstrap token never appears in a comment or log: command output is shown
with it replaced.

.. code-block:: yaml

    kubernetes-node-joined:
      brine_kubeadm.joined:
        - name: worker1
        - command: [kubeadm, join, --config=/etc/kubernetes/brine/kubeadm.yaml]
        - first_master: False
        - standalone_kubelet_config: /etc/kubernetes/brine/kubelet-standalone.yaml
"""

import base64
import datetime
import json
import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import salt.utils.data
import salt.utils.secret

__virtualname__ = "brine_kubeadm"

KUBELET_CONF = "/etc/kubernetes/kubelet.conf"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
LB_CA = "/etc/kubernetes/brine/lb/ca.crt"
#: Files kubeadm leaves on a node it began to bring in (kubelet.conf marks a finished one).
TRACES = ("/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/manifests/kube-apiserver.yaml",
          "/var/lib/kubelet/kubeadm-flags.env", "/var/lib/kubelet/pki/kubelet-client-current.pem")
PREJOIN_UNIT = "brine-kubelet-prejoin"
TOKEN_MIN_LEFT = datetime.timedelta(minutes=30)


def __virtual__():
    return __virtualname__


def _token():
    secrets = salt.utils.secret.expose(salt.utils.data.traverse_dict_and_list(__pillar__, "brine_secrets", {}))
    return (secrets.get("kubernetes") or {}).get("bootstrap_token", "")


def _redact(text):
    token = _token()
    if token:
        text = text.replace(token, "<bootstrap token>").replace(token.split(".")[1], "<token secret>")
    return text


def _run(argv, timeout=600, stderr=True):
    """(exit code, output) of a command; output (stdout, and stderr unless told) with the token redacted."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        return 124, _redact(f"{' '.join(argv[:2])}: timed out after {timeout} s\n{error.stdout or ''}{error.stderr or ''}")
    except OSError as error:
        return 127, f"{argv[0]}: {error}"
    return proc.returncode, _redact(proc.stdout + (proc.stderr if stderr or proc.returncode else ""))


def _tail(text, lines=25):
    return "\n".join(text.strip().splitlines()[-lines:])


def _summary(text, lines=15):
    """The lines of kubeadm's output that say what went wrong, then its last lines."""
    all_lines = text.strip().splitlines()
    errors = [line for line in all_lines if "[ERROR" in line or line.startswith(("error", "E1", "E0", "F1", "F0"))]
    tail = [line for line in all_lines[-lines:] if line not in errors]
    return "\n".join(errors[-lines:] + tail)


def _readyz(port, timeout=3.0):
    """(ok, what) of GET https://127.0.0.1:<port>/readyz, the server checked against the cluster CA."""
    context = ssl.create_default_context(cafile=LB_CA) if os.path.exists(LB_CA) else ssl._create_unverified_context()
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", timeout=timeout, context=context) as response:
            return response.status == 200, f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return False, f"HTTP {error.code}"
    except (OSError, ssl.SSLError) as error:
        return False, str(getattr(error, "reason", error))


def _wait_readyz(port, seconds):
    deadline = time.monotonic() + seconds
    ok, what = _readyz(port)
    while not ok and time.monotonic() < deadline:
        time.sleep(2)
        ok, what = _readyz(port)
    return ok, what


def reset_if_incomplete(name, cri_socket="unix:///run/containerd/containerd.sock"):
    """
    Reset a node kubeadm began to bring in and did not finish.

    name
        The node's name (for the comment).
    cri_socket
        The container runtime's CRI socket kubeadm reset clears.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if os.path.exists(KUBELET_CONF):
        ret["comment"] = f"{name} is a member of its cluster"
        return ret
    traces = [path for path in TRACES if os.path.exists(path)]
    if not traces:
        ret["comment"] = f"{name} has no trace of an unfinished kubeadm run"
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name}: an unfinished kubeadm run ({', '.join(traces)}) would be reset")
        return ret
    code, output = _run(["kubeadm", "reset", "--force", f"--cri-socket={cri_socket}"], timeout=300)
    if code != 0:
        ret.update(result=False, comment=f"kubeadm reset failed (exit {code}):\n{_tail(output)}")
        return ret
    ret.update(changes={"reset": traces}, comment=f"{name}: reset what an unfinished kubeadm run left ({', '.join(traces)})")
    return ret


def _bring_up_lb(api_port, standalone_config, seconds, arguments=()):
    """
    Run this node's static pods (its API load balancer) with a kubelet that needs
    no API: kubelet's TLS bootstrap, run by kubeadm join, reaches the API through
    127.0.0.1 and so needs the load balancer already running. The containers
    outlive this kubelet; kubeadm's kubelet takes the pod over.
    """
    _run(["systemctl", "stop", f"{PREJOIN_UNIT}.service"], timeout=60)
    _run(["systemctl", "reset-failed", f"{PREJOIN_UNIT}.service"], timeout=60)
    code, output = _run(["systemd-run", f"--unit={PREJOIN_UNIT}", "--property=Restart=on-failure",
                         "/usr/local/bin/kubelet", f"--config={standalone_config}", *arguments], timeout=60)
    if code != 0:
        return False, f"could not start a kubelet for the load balancer: {_tail(output)}"
    ok, what = _wait_readyz(api_port, seconds)
    _run(["systemctl", "stop", f"{PREJOIN_UNIT}.service"], timeout=120)
    if not ok:
        return False, (f"the API did not answer through this node's load balancer (https://127.0.0.1:{api_port}/readyz: "
                       f"{what}) within {seconds} s")
    return True, f"the API answers through this node's load balancer ({what})"


def joined(name, command, first_master=False, api_port=6443, standalone_kubelet_config=None,
           standalone_kubelet_arguments=(), wait_seconds=300):
    """
    Make this node a member of its cluster, once.

    name
        The node's name.
    command
        The kubeadm command line (``kubeadm init --config=...`` on the first
        master, ``kubeadm join --config=...`` elsewhere).
    first_master
        True on the node that initialises the cluster.
    api_port
        The port of the local load balancer (and of the API servers).
    standalone_kubelet_config
        A KubeletConfiguration that runs the static pods with no API, used to
        bring up the load balancer before a join.
    standalone_kubelet_arguments
        kubelet's arguments besides ``--config`` for it (the runtime, before 1.27).
    wait_seconds
        How long to wait for the API through the load balancer.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    if os.path.exists(KUBELET_CONF):
        ret.update(result=True, comment=f"{name} is a member of its cluster (kubelet.conf present): kubeadm not run")
        return ret
    what = "kubeadm init" if first_master else "kubeadm join"
    if __opts__["test"]:
        ret.update(result=None, comment=f"{what} would run on {name}")
        return ret
    lines = []
    started = time.monotonic()
    if not first_master:
        ok, said = _bring_up_lb(api_port, standalone_kubelet_config, wait_seconds, standalone_kubelet_arguments)
        if not ok:
            ret["comment"] = f"{name}: {said}; not joined"
            return ret
        lines.append(said)
    code, output = _run(list(command), timeout=900)
    if code != 0:
        ret["comment"] = "\n".join([*lines, f"{what} failed on {name} (exit {code}):", _summary(output)])
        return ret
    lines.append(f"{what} done in {time.monotonic() - started:.1f} s")
    ok, said = _wait_readyz(api_port, wait_seconds)
    if not ok:
        ret.update(changes={"kubeadm": what}, comment="\n".join([*lines, f"but the API is not ready: {said}"]))
        return ret
    lines.append(f"the API is ready through 127.0.0.1:{api_port}")
    ret.update(result=True, changes={"kubeadm": what}, comment="\n".join(lines))
    return ret


def _kubectl(*args, timeout=60):
    return _run(["kubectl", f"--kubeconfig={ADMIN_CONF}", *args], timeout=timeout, stderr=False)


#: What kubectl says when the API is briefly away (an API server restarting behind the
#: load balancer, a loaded master): worth asking again, not a failure of the request.
TRANSIENT = ("timeout", "timed out", "connection refused", "TLS handshake", "currently unable to handle",
             "Service Unavailable", "connection reset", "EOF", "etcdserver", "is forbidden")


def _kubectl_patiently(args, seconds=120, stdin=None):
    """(exit code, stdout, stderr) of kubectl with admin.conf, asked again for up to ``seconds`` while it fails transiently."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            proc = subprocess.run(["kubectl", f"--kubeconfig={ADMIN_CONF}", *args], input=stdin, capture_output=True,
                                  text=True, timeout=60, check=False)
            code, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired:
            code, out, err = 124, "", "kubectl timed out after 60 s"
        except OSError as error:
            return 127, "", f"kubectl: {error}"
        if code == 0 or not any(word in err for word in TRANSIENT) or time.monotonic() > deadline:
            return code, out, err
        time.sleep(3)


def token_valid(name, ttl="2h"):
    """
    The bootstrap token from the pillar exists in the cluster with at least 30
    minutes left; made again (with ``ttl``) otherwise. ``name`` is a label.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    token = _token()
    if not token:
        ret["comment"] = "no bootstrap token in the pillar (salt-run cluster.secrets)"
        return ret
    token_id = token.split(".")[0]
    code, output = _kubectl("-n", "kube-system", "get", f"secret/bootstrap-token-{token_id}", "-o",
                            "jsonpath={.data.expiration}")
    if code == 0:
        expiration = base64.b64decode(output.strip()).decode() if output.strip() else ""
        if not expiration:
            ret.update(result=True, comment="the bootstrap token exists and does not expire")
            return ret
        left = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00")) - datetime.datetime.now(datetime.UTC)
        if left > TOKEN_MIN_LEFT:
            ret.update(result=True, comment=f"the bootstrap token is valid for {int(left.total_seconds() // 60)} more minutes")
            return ret
    elif "NotFound" not in output and "not found" not in output:
        ret["comment"] = f"cannot read the bootstrap token: {_tail(output, 5)}"
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment="the bootstrap token would be made valid again")
        return ret
    _kubectl("-n", "kube-system", "delete", f"secret/bootstrap-token-{token_id}", "--ignore-not-found")
    code, output = _run(["kubeadm", "token", "create", token, f"--ttl={ttl}", f"--kubeconfig={ADMIN_CONF}",
                         "--description=Brine's join token (cluster.deploy makes it valid again on every run)"])
    if code != 0:
        ret["comment"] = f"kubeadm token create failed: {_tail(output, 5)}"
        return ret
    ret.update(result=True, changes={"bootstrap token": f"valid for {ttl}"}, comment=f"bootstrap token made valid for {ttl}")
    return ret


def api_ready(name, api_port=6443, wait_seconds=300):
    """The API answers ``/readyz`` through this node's load balancer (a gate; changes nothing)."""
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    ok, said = _wait_readyz(api_port, wait_seconds)
    ret.update(result=ok, comment=f"https://127.0.0.1:{api_port}/readyz: {said}")
    return ret


def nodes_ready(name, nodes, wait_seconds=600, static_pods=()):
    """
    Every node in ``nodes`` is registered and Ready (read with admin.conf on a
    master), and every pod named in ``static_pods`` (kube-system mirror pods,
    e.g. ``brine-api-lb-worker1``) is Running with every container ready. A gate: changes nothing; fails
    naming each node or pod not ready and why.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    deadline = time.monotonic() + wait_seconds
    while True:
        code, output = _kubectl("get", "nodes", "-o", "json")
        problems = []
        if code != 0:
            problems.append(f"kubectl get nodes: {_tail(output, 3)}")
        else:
            found = {item["metadata"]["name"]: item for item in json.loads(output)["items"]}
            for node in nodes:
                if node not in found:
                    problems.append(f"{node}: not registered")
                    continue
                ready = next((c for c in found[node]["status"].get("conditions", []) if c["type"] == "Ready"), None)
                if not ready or ready["status"] != "True":
                    problems.append(f"{node}: not Ready ({(ready or {}).get('message', 'no Ready condition')})")
        if not problems and static_pods:
            problems.extend(_pods_not_running(static_pods))
        if not problems:
            pods = f"; {len(static_pods)} static pods Running" if static_pods else ""
            ret.update(result=True, comment=f"all {len(nodes)} nodes Ready: {', '.join(nodes)}{pods}")
            return ret
        if time.monotonic() > deadline:
            ret["comment"] = f"after {wait_seconds} s:\n" + "\n".join(problems)
            return ret
        time.sleep(3)


def _pods_not_running(names, namespace="kube-system"):
    code, output = _kubectl("-n", namespace, "get", "pods", "-o", "json")
    if code != 0:
        return [f"kubectl get pods: {_tail(output, 3)}"]
    found = {}
    for item in json.loads(output)["items"]:
        status = item["status"]
        ready = bool(status.get("containerStatuses")) and all(c.get("ready") for c in status["containerStatuses"])
        found[item["metadata"]["name"]] = "Running and ready" if status.get("phase") == "Running" and ready else \
            f"{status.get('phase', 'no phase')}{'' if ready else ', not ready'}"
    return [f"pod {namespace}/{pod}: {found.get(pod, 'not registered')}, not Running and ready"
            for pod in names if found.get(pod) != "Running and ready"]


def record_applied(name, data, bundle_url=None, namespace="kube-system"):
    """
    The ConfigMap ``<namespace>/<name>`` holds ``data`` (the cluster's deploy
    settings; no secret ever goes in), plus the served bundle's id and
    ``deployed_at``: when these settings were first recorded. Applied again only
    when a setting differs, so a re-run on an unchanged cluster changes nothing.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    wanted = {key: value if isinstance(value, str) else json.dumps(value, sort_keys=True) for key, value in data.items()}
    if bundle_url:
        try:
            with urllib.request.urlopen(f"{bundle_url.rstrip('/')}/index.json", timeout=30) as response:
                wanted["bundle_id"] = json.load(response)["bundle_id"]
        except (OSError, ValueError, KeyError) as error:
            ret["comment"] = f"cannot read the bundle id from {bundle_url}/index.json: {error}"
            return ret
    code, output, error = _kubectl_patiently(["-n", namespace, "get", f"configmap/{name}", "-o", "json"])
    if code != 0 and "NotFound" not in error:
        ret["comment"] = f"cannot read configmap {namespace}/{name}: {_tail(error, 5)}"
        return ret
    current = json.loads(output).get("data", {}) if code == 0 else {}
    if {k: v for k, v in current.items() if k != "deployed_at"} == wanted:
        ret.update(result=True, comment=f"configmap {namespace}/{name} records these settings since {current.get('deployed_at')}")
        return ret
    wanted["deployed_at"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if __opts__["test"]:
        ret.update(result=None, comment=f"configmap {namespace}/{name} would be applied")
        return ret
    document = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": name, "namespace": namespace,
                                        "labels": {"app.kubernetes.io/managed-by": "brine"}},
                           "data": wanted})  # fmt: skip
    code, _, error = _kubectl_patiently(["apply", "-f", "-"], stdin=document)
    if code != 0:
        ret["comment"] = f"kubectl apply of configmap {namespace}/{name} failed: {_tail(error, 5)}"
        return ret
    changed = sorted(k for k in wanted if k != "deployed_at" and current.get(k) != wanted[k])
    ret.update(result=True, changes={"recorded": changed}, comment=f"configmap {namespace}/{name} applied")
    return ret


def _corefile_forward(corefile, upstream):
    """The Corefile with its ``forward`` block pointing at ``upstream`` (kept as is for None; removed for [])."""
    import re  # pylint: disable=import-outside-toplevel

    block = re.compile(r"^([ \t]*)forward \. [^\n{]*(\{[^}]*\})?[ \t]*\n", re.M)
    match = block.search(corefile)
    if upstream is None or match is None:
        return corefile
    if not upstream:
        return corefile[:match.start()] + corefile[match.end():]
    indent, options = match.group(1), match.group(2) or ""
    line = f"{indent}forward . {' '.join(str(u) for u in upstream)}" + (f" {options}" if options else "") + "\n"
    return corefile[:match.start()] + line + corefile[match.end():]


def coredns_upstream(name, upstream=None):
    """
    CoreDNS forwards names outside the cluster to ``upstream`` (a list of name
    server addresses): None keeps kubeadm's ``forward . /etc/resolv.conf``; an
    empty list removes the forward block (a site without DNS: CoreDNS answers
    cluster names only, instead of failing for want of a name server).
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    code, output = _kubectl("-n", "kube-system", "get", "configmap/coredns", "-o", "json")
    if code != 0:
        ret["comment"] = f"cannot read kube-system/coredns: {_tail(output, 3)}"
        return ret
    configmap = json.loads(output)
    corefile = configmap["data"].get("Corefile", "")
    wanted = _corefile_forward(corefile, upstream)
    said = "node's /etc/resolv.conf" if upstream is None else (", ".join(map(str, upstream)) or "no upstream")
    if wanted == corefile:
        ret.update(result=True, comment=f"CoreDNS forwards to: {said}")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"CoreDNS would forward to: {said}")
        return ret
    patch = json.dumps({"data": {"Corefile": wanted}})
    code, output = _kubectl("-n", "kube-system", "patch", "configmap/coredns", "--type=merge", "-p", patch)
    if code != 0:
        ret["comment"] = f"cannot patch kube-system/coredns: {_tail(output, 3)}"
        return ret
    _kubectl("-n", "kube-system", "rollout", "restart", "deployment/coredns")
    ret.update(result=True, changes={"forward": said}, comment=f"CoreDNS now forwards to: {said}")
    return ret


#: What ``kubeadm certs renew all`` renews on a master, as files (kubeconfigs: their client certificate).
KUBEADM_CERTS = ("/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
                 "/etc/kubernetes/pki/front-proxy-client.crt", "/etc/kubernetes/admin.conf",
                 "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/controller-manager.conf",
                 "/etc/kubernetes/scheduler.conf")
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _days_left(path):
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith(".conf"):
        import yaml  # pylint: disable=import-outside-toplevel

        users = yaml.safe_load(data).get("users") or [{}]
        encoded = users[0].get("user", {}).get("client-certificate-data")
        if not encoded:
            return None
        data = base64.b64decode(encoded)
    cert = x509.load_pem_x509_certificate(data)
    return (cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400


def _apiserver_ready(address, port, seconds):
    """This master's own API server (not the load balancer) answers /readyz, within ``seconds``."""
    context = ssl._create_unverified_context()  # a liveness probe of our own server; kubeadm's CA checks the rest
    deadline = time.monotonic() + seconds
    said = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"https://{address}:{port}/readyz", timeout=3, context=context) as response:
                if response.status == 200:
                    return True, "HTTP 200"
                said = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            said = f"HTTP {error.code}"
        except (OSError, ssl.SSLError) as error:
            said = str(getattr(error, "reason", error))
        time.sleep(2)
    return False, said


def certs_renewed(name, address, api_port=6443, days=30, force=False, wait_seconds=300):
    """
    kubeadm's certificates on this master have at least ``days`` left: when one
    has fewer (or with ``force``), ``kubeadm certs renew all``, then the control
    plane's containers are stopped so kubelet starts them on the new
    certificates, and this master's API server must answer ``/readyz`` again.
    ``name`` is a label; ``address`` this master's API server address.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    left = {}
    for path in KUBEADM_CERTS:
        if os.path.isfile(path):
            value = _days_left(path)
            if value is not None:
                left[path] = value
    if not left:
        ret["comment"] = "no kubeadm certificate here: not a master of a running cluster"
        return ret
    soonest_path = min(left, key=left.get)
    soonest = left[soonest_path]
    if soonest >= float(days) and not force:
        ret.update(result=True, comment=f"every kubeadm certificate has {int(soonest)} days or more left "
                                        f"(soonest: {soonest_path}); renewal below {days} days")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"would renew (soonest {soonest_path}: {soonest:.1f} days left)")
        return ret
    code, output = _run(["kubeadm", "certs", "renew", "all"])
    if code != 0:
        ret["comment"] = f"kubeadm certs renew all failed: {_tail(output, 8)}"
        return ret
    stopped = []
    for component in CONTROL_PLANE:
        code, ids = _run(["crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "ps", "-q",
                          "--name", f"^{component}$"], stderr=False)
        for container in ids.split():
            _run(["crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "stop", container])
            stopped.append(component)
    ok, said = _apiserver_ready(address, api_port, wait_seconds)
    renewed_to = min(v for v in (_days_left(p) for p in left) if v is not None)
    ret.update(result=ok, changes={"renewed": sorted(left), "restarted": sorted(set(stopped))},
               comment=f"renewed (soonest now {renewed_to:.0f} days); control plane restarted; "
                       f"API server at {address}:{api_port}: {said}")
    return ret


MANIFESTS_DIR = "/etc/kubernetes/manifests"
#: Marks a node Brine cordoned for an upgrade: only such a node is uncordoned after
#: it (a node someone cordoned by hand stays cordoned).
CORDONED_FOR_UPGRADE = "brine.io/cordoned-for-upgrade"


def _v(version):
    return "v" + str(version).strip().lstrip("v")


def _control_plane_versions():
    """{component: image tag} of this master's control-plane static pods ({} when there are none)."""
    found = {}
    for component in CONTROL_PLANE:
        path = os.path.join(MANIFESTS_DIR, f"{component}.yaml")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip().startswith("image:"):
                    found[component] = line.split("image:", 1)[1].strip().strip("'\"").rsplit(":", 1)[-1]
                    break
    return found


def _kubelet_version():
    code, output = _run(["kubelet", "--version"], timeout=30)
    return output.split()[-1] if code == 0 and output.strip() else ""


def upgraded(name, version, first_master=False, control_plane=False, patches_dir=None, ignored_checks=()):
    """
    kubeadm's upgrade to ``version`` done on this node, before its kubelet is
    replaced: on the first master ``kubeadm upgrade apply <version>`` (the
    cluster's configuration, this master's control plane, kube-proxy and
    CoreDNS once every master is upgraded), on the other masters ``kubeadm
    upgrade node`` (their control plane, and the addons on the last one), on
    workers ``kubeadm upgrade node`` (kubelet's configuration). Brine's patches
    (``patches_dir``) apply again; ``ignored_checks`` are kubeadm preflight
    checks skipped (``--ignore-preflight-errors``). Nothing runs on a master whose control plane
    runs ``version``, or on a worker whose kubelet does. ``name`` is the node.

    .. code-block:: yaml

        kubernetes-upgraded:
          brine_kubeadm.upgraded:
            - name: master1
            - version: v1.37.2
            - first_master: True
            - control_plane: True
            - patches_dir: /etc/kubernetes/brine/patches
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    version = _v(version)
    if control_plane:
        found = _control_plane_versions()
        if not found:
            ret["comment"] = f"{name}: no control-plane manifest in {MANIFESTS_DIR}: not a master of a running cluster"
            return ret
        if all(tag == version for tag in found.values()) and len(found) == len(CONTROL_PLANE):
            ret.update(result=True, comment=f"{name}: the control plane runs {version}")
            return ret
        argv = ["kubeadm", "upgrade", "apply", version, "--yes"] if first_master else ["kubeadm", "upgrade", "node"]
        was = ", ".join(f"{component} {tag}" for component, tag in sorted(found.items()))
    else:
        was = _kubelet_version()
        if was == version:
            ret.update(result=True, comment=f"{name}: kubelet runs {version}")
            return ret
        argv = ["kubeadm", "upgrade", "node"]
    if patches_dir and os.path.isdir(patches_dir) and os.listdir(patches_dir):
        argv.append(f"--patches={patches_dir}")
    if ignored_checks:
        argv.append("--ignore-preflight-errors=" + ",".join(ignored_checks))
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name}: would run {' '.join(argv)}", changes={"kubeadm": " ".join(argv)})
        return ret
    code, output = _run(argv, timeout=1800)
    if code != 0:
        ret["comment"] = f"{name}: {' '.join(argv)} failed (exit {code}):\n{_summary(output)}"
        return ret
    if control_plane:
        now = _control_plane_versions()
        behind = sorted(component for component, tag in now.items() if tag != version)
        if behind:
            ret["comment"] = f"{name}: {' '.join(argv)} ended but {', '.join(behind)} do not run {version}"
            return ret
    ret.update(result=True, changes={"kubeadm": " ".join(argv), "was": was},
               comment=f"{name}: {' '.join(argv[:3])} to {version} done")
    return ret


def _node(name):
    code, output = _kubectl("get", "node", name, "-o", "json")
    if code != 0:
        return None, _tail(output, 3)
    return json.loads(output), ""


def drained(name, version, timeout=300):
    """
    Node ``name`` cordoned and drained (DaemonSet pods stay; PodDisruptionBudgets
    are obeyed, up to ``timeout`` seconds) before its kubelet is replaced by
    ``version`` - unless its kubelet runs ``version`` already and Brine has
    not cordoned it. Run on a master (admin.conf). A node Brine cordons is
    marked (annotation ``brine.io/cordoned-for-upgrade``), so
    ``upgrade_finished`` uncordons it and only it.

    .. code-block:: yaml

        worker1-drained:
          brine_kubeadm.drained:
            - name: worker1
            - version: v1.37.2
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    version = _v(version)
    node, problem = _node(name)
    if node is None:
        ret["comment"] = f"{name}: cannot read the node: {problem}"
        return ret
    kubelet = node["status"]["nodeInfo"]["kubeletVersion"]
    marked = CORDONED_FOR_UPGRADE in (node["metadata"].get("annotations") or {})
    cordoned_by_hand = bool(node["spec"].get("unschedulable")) and not marked
    if kubelet == version and not marked:
        ret.update(result=True, comment=f"{name}: kubelet runs {version}; not drained")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name}: would be cordoned and drained", changes={"drained": name})
        return ret
    if not cordoned_by_hand and not marked:
        code, output = _kubectl("annotate", "node", name, "--overwrite", f"{CORDONED_FOR_UPGRADE}={version}")
        if code != 0:
            ret["comment"] = f"{name}: cannot mark the node: {_tail(output, 3)}"
            return ret
    code, output = _kubectl("drain", name, "--ignore-daemonsets", "--delete-emptydir-data", "--force",
                            f"--timeout={int(timeout)}s", timeout=int(timeout) + 60)
    if code != 0:
        ret["comment"] = f"{name}: kubectl drain failed (it stays cordoned; a re-run drains again):\n{_tail(output, 8)}"
        return ret
    evicted = [line for line in output.splitlines() if "evicted" in line]
    ret.update(result=True, changes={"cordoned": name, "evicted": len(evicted)},
               comment=f"{name}: cordoned and drained ({len(evicted)} pods evicted)"
                       + ("; it was cordoned by hand and stays so after the upgrade" if cordoned_by_hand else ""))
    return ret


def upgrade_finished(name, version, wait_seconds=600):
    """
    Node ``name`` registered, Ready, its kubelet reporting ``version``; then, if
    Brine cordoned it for the upgrade, uncordoned. A gate (fails naming what is
    missing after ``wait_seconds``); run on a master.

    .. code-block:: yaml

        worker1-upgrade-finished:
          brine_kubeadm.upgrade_finished:
            - name: worker1
            - version: v1.37.2
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    version = _v(version)
    deadline = time.monotonic() + wait_seconds
    while True:
        node, problem = _node(name)
        if node is not None:
            kubelet = node["status"]["nodeInfo"]["kubeletVersion"]
            ready = next((c for c in node["status"].get("conditions", []) if c["type"] == "Ready"), {})
            problem = "" if kubelet == version and ready.get("status") == "True" else \
                f"kubelet {kubelet}, Ready {ready.get('status', 'unknown')} ({ready.get('message', '')})"
            if not problem:
                break
        if time.monotonic() > deadline:
            ret["comment"] = f"{name}: after {wait_seconds} s not Ready on {version}: {problem}"
            return ret
        time.sleep(3)
    if CORDONED_FOR_UPGRADE not in (node["metadata"].get("annotations") or {}):
        ret.update(result=True, comment=f"{name}: Ready on kubelet {version}")
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name}: would be uncordoned", changes={"uncordoned": name})
        return ret
    code, output = _kubectl("uncordon", name)
    if code == 0:
        code, output = _kubectl("annotate", "node", name, f"{CORDONED_FOR_UPGRADE}-")
    if code != 0:
        ret["comment"] = f"{name}: Ready on {version} but not uncordoned: {_tail(output, 3)}"
        return ret
    ret.update(result=True, changes={"uncordoned": name}, comment=f"{name}: Ready on kubelet {version}, uncordoned")
    return ret
