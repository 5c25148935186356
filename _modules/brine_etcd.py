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
