"""
Checks of the etcd member this runs on, over TLS with a client certificate.

CLI Example:

.. code-block:: bash

    salt-ssh 'master1.demo' brine_etcd.health /etc/etcd/pki/ca.crt \
        /etc/etcd/pki/healthcheck-client.crt /etc/etcd/pki/healthcheck-client.key
"""

import brine_etcd

__virtualname__ = "brine_etcd"


def __virtual__():
    return __virtualname__


def health(cacert, cert, key, endpoint="https://127.0.0.1:2379", cluster=True, command_timeout="5s"):
    """
    ``etcdctl endpoint health`` through ``endpoint`` (with ``cluster``: every
    member the cluster lists, at its advertised client URL). Returns
    ``{"healthy": [client URLs], "endpoints": {url: {health, took, error}}, "error": text}``.

    cacert, cert, key
        The etcd CA certificate and a client certificate and key it signed.

    CLI Example:

    .. code-block:: bash

        salt-ssh 'master1.demo' brine_etcd.health /etc/etcd/pki/ca.crt \
            /etc/etcd/pki/healthcheck-client.crt /etc/etcd/pki/healthcheck-client.key
    """
    args = ["endpoint", "health", "-w", "json", *(["--cluster"] if cluster else [])]
    argv = brine_etcd.etcdctl_argv(endpoint, cacert, cert, key, *args, command_timeout=command_timeout)
    out = __salt__["cmd.run_all"](argv, python_shell=False, clean_env=True, env=brine_etcd.CLEAN_ENV,
                                  ignore_retcode=True, output_loglevel="quiet")
    checked = brine_etcd.parse_health(out.get("stdout", ""), out.get("stderr", ""))
    return {"healthy": checked.healthy_endpoints(), "endpoints": checked.endpoints, "error": checked.error}


def _member_list(cacert, cert, key, endpoints):
    argv = brine_etcd.etcdctl_argv(endpoints, cacert, cert, key, "member", "list", "-w", "json")
    out = __salt__["cmd.run_all"](argv, python_shell=False, clean_env=True, env=brine_etcd.CLEAN_ENV,
                                  ignore_retcode=True, output_loglevel="quiet")
    if out.get("retcode") != 0:
        raise RuntimeError(f"etcdctl member list: {(out.get('stderr') or out.get('stdout') or '').strip()[-500:]}")
    import json  # pylint: disable=import-outside-toplevel

    return json.loads(out["stdout"]).get("members", [])


def removable(member, cacert, cert, key, endpoints):
    """
    Whether removing etcd member ``member`` (its name) keeps a quorum: the
    members still healthy after it must be a majority of the smaller cluster,
    and at least one must stay. Read-only. Returns the reason; the call fails
    (exit code 1) when removal would break quorum.

    CLI Example:

    .. code-block:: bash

        salt 'master1.demo' brine_etcd.removable master3 /etc/kubernetes/pki/etcd/ca.crt \
            /etc/kubernetes/pki/apiserver-etcd-client.crt /etc/kubernetes/pki/apiserver-etcd-client.key \
            https://10.77.0.11:2379,https://10.77.0.12:2379
    """
    try:
        members = _member_list(cacert, cert, key, endpoints)
    except RuntimeError as error:
        __context__["retcode"] = 1
        return f"cannot list etcd members: {error}"
    names = {m.get("name"): m for m in members}
    if member not in names:
        return f"{member} is not an etcd member (members: {', '.join(sorted(n for n in names if n))}); nothing to remove"
    checked = health(cacert, cert, key, endpoint=endpoints if isinstance(endpoints, str) else ",".join(endpoints))
    healthy = set(checked["healthy"])
    leaving_urls = set(names[member].get("clientURLs", []))
    size_after = len(members) - 1
    healthy_after = len(healthy - leaving_urls)
    needed = size_after // 2 + 1
    if size_after < 1 or healthy_after < needed:
        __context__["retcode"] = 1
        return (f"refused: removing {member} leaves {healthy_after} healthy of {size_after} members, "
                f"a quorum needs {needed}; bring the unhealthy members back first")
    return f"{member} can go: {healthy_after} healthy of {size_after} members stay (quorum {needed})"


def member_remove(member, cacert, cert, key, endpoints):
    """
    Remove etcd member ``member`` (its name) from the cluster; nothing to do when
    it is not a member. Check :func:`removable` first. The removal is asked of
    the members that stay and confirmed by listing the members again.

    CLI Example:

    .. code-block:: bash

        salt 'master1.demo' brine_etcd.member_remove master3 /etc/kubernetes/pki/etcd/ca.crt \
            /etc/kubernetes/pki/apiserver-etcd-client.crt /etc/kubernetes/pki/apiserver-etcd-client.key \
            https://10.77.0.11:2379,https://10.77.0.12:2379
    """
    try:
        members = _member_list(cacert, cert, key, endpoints)
    except RuntimeError as error:
        __context__["retcode"] = 1
        return str(error)
    found = [m for m in members if m.get("name") == member]
    if not found:
        return f"{member}: not an etcd member (already removed)"
    member_id = format(int(found[0]["ID"]), "x")
    # Ask the members that stay: a member told to remove itself stops before it
    # answers ("etcdserver: server stopped") although the removal went through.
    # The staying members' client URLs come from the member list itself, so the
    # call works even when ``endpoints`` named only the leaving member.
    staying = [url for m in members if m is not found[0] for url in m.get("clientURLs") or []] or endpoints
    argv = brine_etcd.etcdctl_argv(staying, cacert, cert, key, "member", "remove", member_id)
    out = __salt__["cmd.run_all"](argv, python_shell=False, clean_env=True, env=brine_etcd.CLEAN_ENV,
                                  ignore_retcode=True, output_loglevel="quiet")
    if out.get("retcode") != 0:
        try:
            still = [m for m in _member_list(cacert, cert, key, staying) if m.get("name") == member]
        except RuntimeError:
            still = found
        if still:
            __context__["retcode"] = 1
            return f"etcdctl member remove {member_id}: {(out.get('stderr') or '').strip()[-500:]}"
    return f"{member}: removed from etcd (member id {member_id})"
