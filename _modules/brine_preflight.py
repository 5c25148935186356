"""
Preflight checks on a node, read-only: every way the node falls short of what
its roles need, collected and returned together (logic and data:
``_utils/brine_preflight.py``).

Under salt-ssh this module cannot read pillar: the ``cluster.preflight`` runner
works out each node's arguments from the cluster's pillar and passes them in.

CLI Example:

.. code-block:: bash

    salt-ssh worker1.demo brine_preflight.check roles='[worker]' address=10.77.0.21
    salt-ssh master1.demo brine_preflight.check roles='[master, etcd]' address=10.77.0.11 kube_proxy_mode=ipvs
    salt-ssh '*.demo' brine_preflight.facts
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import brine_kernel
import brine_preflight

__virtualname__ = "brine_preflight"


def __virtual__():
    return __virtualname__


def _structured(value: Any) -> Any:
    """
    Lists and mappings may arrive as JSON text from the command line, or as
    ``base64:<JSON>`` (what the runner sends: salt-ssh hands keyword arguments
    over as a Python repr the target parses again as YAML, which turns None
    into the string "None").
    """
    if isinstance(value, str) and value.startswith("base64:"):
        return json.loads(base64.b64decode(value[len("base64:"):]))
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            pass
    return value


def check(
    roles: list[str] | str | None = None,
    address: str | None = None,
    ports: list[dict[str, Any]] | str | None = None,
    min_cpus: int | None = None,
    min_memory_mib: int | None = None,
    min_disk_mib: int | None = None,
    kube_proxy_mode: str = "ipvs",
    runtime: str = "containerd",
    api_port: int = 6443,
    name: str | None = None,
    sysctls: dict[str, Any] | str | None = None,
    tolerate_readonly: list[str] | str | None = None,
    by_node: dict[str, dict[str, Any]] | str | None = None,
) -> dict[str, Any]:
    """
    Check this node against what its roles need, and change nothing. Returns
    ``{"problems": [{"check", "found", "expected"}...], "warnings": [...],
    "facts": {hostname, macs, product_uuid, machine_id, time, ...}}``; ``time``
    (epoch seconds) is read last, just before the reply leaves.

    roles
        The node's roles (master, etcd, worker).
    address
        The inventory's address of the node: it must be configured on one of
        its interfaces.
    ports
        The TCP ports that must be free, ``[{"port", "address", "for", "owners"}]``
        (address null: every address; owners: process names that may hold
        the port, its own component's). Default: those of ``roles``.
    min_cpus, min_memory_mib, min_disk_mib
        The minimums; default: the largest of ``roles``' (free disk is under /var/lib).
    kube_proxy_mode
        ``ipvs`` also needs the ip_vs kernel modules.
    runtime
        The cluster's container runtime: any other one installed is a problem.
    api_port
        env.api_port, for the default ports.
    name
        The inventory's name of the node: a different hostname is a warning.
    sysctls
        ``{entry: value}`` the os step will set: each must hold already or be
        writable here (the runner passes salt/os_base/defaults.yaml's).
    tolerate_readonly
        Entries of ``sysctls`` whose host value is acceptable when they cannot
        be set here (a warning instead of a problem).
    by_node
        ``{minion id: {argument: value}}`` (or that as JSON, or as
        ``base64:<JSON>``): when one call goes to many nodes, each takes its own
        arguments from here (keyed by its minion id).

    CLI Example:

    .. code-block:: bash

        salt-ssh worker1.demo brine_preflight.check roles='[worker]' address=10.77.0.21
    """
    arguments = {"roles": roles, "address": address, "ports": ports, "min_cpus": min_cpus,
                 "min_memory_mib": min_memory_mib, "min_disk_mib": min_disk_mib,
                 "kube_proxy_mode": kube_proxy_mode, "runtime": runtime, "api_port": api_port, "name": name,
                 "sysctls": sysctls, "tolerate_readonly": tolerate_readonly}
    mine = (_structured(by_node) or {}).get(__opts__.get("id"), {})
    arguments.update({key: value for key, value in mine.items() if key in arguments})
    roles = _structured(arguments["roles"]) or []
    if isinstance(roles, str):
        roles = [role.strip() for role in roles.split(",") if role.strip()]
    need = brine_preflight.requirements_for(roles, int(arguments["api_port"]))
    ports = _structured(arguments["ports"])
    report = brine_preflight.node_checks(
        roles=roles,
        address=arguments["address"],
        ports=need["ports"] if ports is None else ports,
        min_cpus=need["cpus"] if arguments["min_cpus"] is None else int(arguments["min_cpus"]),
        min_memory_mib=need["memory_mib"] if arguments["min_memory_mib"] is None else int(arguments["min_memory_mib"]),
        min_disk_mib=need["disk_mib"] if arguments["min_disk_mib"] is None else int(arguments["min_disk_mib"]),
        modules=brine_preflight.modules_for(arguments["kube_proxy_mode"]),
        sysctls=_structured(arguments["sysctls"]) or {},
        tolerated=_structured(arguments["tolerate_readonly"]) or [],
        kube_proxy_mode=arguments["kube_proxy_mode"],
        runtime=arguments["runtime"],
        name=arguments["name"],
    )
    result = report.as_dict()
    result["facts"]["time"] = time.time()
    return result


def facts() -> dict[str, Any]:
    """
    What the cross-node checks compare: hostname, MACs, product_uuid,
    machine-id, and this node's clock (epoch seconds).

    CLI Example:

    .. code-block:: bash

        salt-ssh '*.demo' brine_preflight.facts
    """
    paths = brine_kernel.KernelPaths()
    report = brine_preflight.node_checks(roles=[], address=None, ports=[], min_cpus=0, min_memory_mib=0,
                                         min_disk_mib=0, modules=[], paths=paths)
    wanted = ("hostname", "macs", "product_uuid", "machine_id", "kernel", "container", "os")
    return {**{key: report.facts.get(key) for key in wanted}, "time": time.time()}


def module(name: str) -> dict[str, str]:
    """
    Where kernel module ``name`` stands: loaded, built in, loadable or missing,
    and how that was found. Loads nothing.

    CLI Example:

    .. code-block:: bash

        salt-ssh master1.demo brine_preflight.module ip_vs
    """
    status = brine_kernel.module_status(name)
    return {"name": status.name, "state": status.state, "detail": status.detail}
