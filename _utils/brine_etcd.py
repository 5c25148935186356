"""
etcd as Brine runs it: the etcdctl command lines its states, health gate and
backups use, and what ``etcdctl endpoint health`` says, read.

Every etcdctl here gets its TLS settings as flags and runs with a clean
environment: etcd 3.4 reads any ``ETCDCTL_*`` variable as a flag, and refuses a
flag given both ways.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ETCDCTL = "/usr/bin/etcdctl"
#: The environment etcdctl runs in: nothing but a PATH.
CLEAN_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def etcdctl_argv(endpoints: str | list[str], cacert: str, cert: str, key: str, *args: str,
                 command_timeout: str = "5s") -> list[str]:
    """etcdctl talking TLS to ``endpoints`` with a client certificate, then ``args``."""
    if isinstance(endpoints, list):
        endpoints = ",".join(endpoints)
    return [ETCDCTL, f"--endpoints={endpoints}", f"--cacert={cacert}", f"--cert={cert}", f"--key={key}",
            f"--command-timeout={command_timeout}", *args]


@dataclass
class Health:
    """The cluster's health as one ``etcdctl endpoint health --cluster`` saw it."""

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str = ""

    def healthy_endpoints(self) -> list[str]:
        return sorted(url for url, item in self.endpoints.items() if item.get("health") is True)

    def problems(self, expected: list[str]) -> list[str]:
        """Everything wrong, one per line: unhealthy, missing and unexpected members, or why there is no answer."""
        if not self.endpoints:
            return [f"no answer from etcd: {self.error or 'etcdctl printed nothing'}"]
        out = []
        for url, item in sorted(self.endpoints.items()):
            if item.get("health") is not True:
                out.append(f"{url}: unhealthy: {item.get('error') or 'no reason given'}")
            if expected and url not in expected:
                out.append(f"{url}: a member the inventory does not list")
        out += [f"{url}: not a member of the cluster" for url in expected if url not in self.endpoints]
        return out

    def summary(self) -> str:
        return ", ".join(f"{url} ({self.endpoints[url].get('took', '?')})" for url in self.healthy_endpoints())


def parse_health(stdout: str, stderr: str = "") -> Health:
    """
    Read ``etcdctl endpoint health -w json``: a JSON list of
    ``{"endpoint", "health", "took", "error"}``. Anything else (no answer at
    all) leaves ``endpoints`` empty with ``error`` saying why.
    """
    health = Health(error=" ".join(stderr.split())[-500:])
    text = stdout.strip()
    start = text.find("[")
    if start < 0:
        return health
    try:
        items = json.loads(text[start:])
    except ValueError:
        return health
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("endpoint"):
            health.endpoints[item["endpoint"]] = item
    return health


def client_url(address: str, port: int) -> str:
    """``https://<address>:<port>``, an IPv6 address in brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"
