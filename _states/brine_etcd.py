"""
The etcd health gate: every member the inventory lists answers healthy over
TLS, waiting a bounded time. A check: it reports no changes, so a converged
cluster re-runs clean.

Example:

.. code-block:: yaml

    etcd-cluster-healthy:
      brine_etcd.healthy:
        - members:
          - https://10.77.0.11:2379
          - https://10.77.0.12:2379
          - https://10.77.0.13:2379
        - cacert: /etc/etcd/pki/ca.crt
        - cert: /etc/etcd/pki/healthcheck-client.crt
        - key: /etc/etcd/pki/healthcheck-client.key
        - timeout: 120
"""

import time

import brine_etcd

__virtualname__ = "brine_etcd"


def __virtual__():
    return __virtualname__


def healthy(name, members, cacert, cert, key, endpoint="https://127.0.0.1:2379", timeout=120, interval=2):
    """
    Ensure ``etcdctl endpoint health --cluster``, asked through ``endpoint``,
    finds exactly ``members`` (their advertised client URLs) and every one
    healthy; retried every ``interval`` seconds for up to ``timeout`` seconds.
    On failure the comment names each member at fault and why.

    name
        The state's id.
    members
        The client URLs of every etcd member the inventory lists.
    cacert, cert, key
        The etcd CA certificate and the health-check client certificate and key.
    """
    ret = {"name": name, "changes": {}, "result": False, "comment": ""}
    expected = sorted(members)
    started = time.monotonic()
    while True:
        found = __salt__["brine_etcd.health"](cacert, cert, key, endpoint=endpoint)
        checked = brine_etcd.Health(endpoints=found["endpoints"], error=found["error"])
        problems = checked.problems(expected)
        waited = time.monotonic() - started
        if not problems:
            ret.update(result=True, comment=f"etcd: {len(expected)}/{len(expected)} members healthy after "
                                            f"{waited:.1f} s: {checked.summary()}")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"etcd is not healthy yet; would wait up to {timeout} s for "
                                            f"{len(expected)} healthy members:\n" + "\n".join(problems))
            return ret
        if waited + interval > float(timeout):
            ret["comment"] = (f"etcd: {len(checked.healthy_endpoints())}/{len(expected)} members healthy after "
                              f"{waited:.0f} s (gave up):\n" + "\n".join(problems))
            return ret
        time.sleep(float(interval))
