"""
The zero-egress check: every image reference and URL in what Brine renders for
a cluster must point at the deploy node's registry or file server, or inside
the cluster (loopback, node addresses, pod and service networks, in-cluster DNS
names). Anything else would make a node reach out of the data centre.

Comment lines are not read: nothing fetches them. Nor are the ``description``
texts of YAML documents (the schemas of CustomResourceDefinitions link to docs).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

# A comma ends a URL: flags list URLs comma-separated (etcd's --initial-cluster,
# kube-apiserver's --etcd-servers).
URL = re.compile(r"\b(?:https?|docker|oci|git|ftp)://[^\s\"'<>)\]},]+")
IMAGE = re.compile(
    r"(?:\bimage|sandbox_image|imageRepository|pod-infra-container-image|\bimages?)\s*[:=]\s*[\"']?"
    r"(?P<ref>[A-Za-z0-9][^\s\"',}\]]*)"
)
COMMENT = re.compile(r"^\s*(#|//|;)")


@dataclass(frozen=True)
class Finding:
    """One reference that leaves the cluster."""

    source: str
    line: int
    reference: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.reference} {self.reason}"


@dataclass(frozen=True)
class Allowed:
    """Where a cluster's references may point."""

    registry: str
    file_server: str
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    addresses: frozenset[str]
    cluster_domain: str

    @classmethod
    def for_cluster(cls, env: dict[str, Any], nodes: list[dict[str, Any]]) -> Allowed:
        url = urlsplit(env["bundle"]["url"])
        default_port = 443 if url.scheme == "https" else 80
        return cls(
            registry=env["bundle"]["registry"].lower(),
            file_server=f"{url.hostname}:{url.port or default_port}".lower(),
            networks=tuple(ipaddress.ip_network(env["networks"][k]) for k in ("pod", "service")),
            addresses=frozenset(str(n["address"]) for n in nodes),
            cluster_domain=env.get("cluster_domain", "cluster.local"),
        )

    def _internal_host(self, host: str) -> bool:
        host = host.strip("[]").lower()
        if host in ("localhost", "kubernetes", "kubernetes.default") or host.endswith(
                (".svc", f".{self.cluster_domain}")):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address.is_loopback or str(address) in self.addresses or any(address in n for n in self.networks)

    def url_problem(self, url: str) -> str | None:
        parts = urlsplit(url)
        if parts.scheme in ("docker", "oci"):
            return self.image_problem(url.split("://", 1)[1])
        if not parts.hostname:
            return None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "has a port that is not a number (cannot tell where it points)"
        authority = f"{parts.hostname}:{port}".lower()
        if authority in (self.file_server, self.registry) or self._internal_host(parts.hostname):
            return None
        return f"points outside the cluster (allowed: the file server {self.file_server}, the registry {self.registry})"

    def image_problem(self, reference: str) -> str | None:
        if "{{" in reference or reference.startswith(("$", "<")):
            return None
        if reference.lower().startswith(self.registry + "/") or reference.lower() == self.registry:
            return None
        return f"is not an image of the private registry {self.registry}"


#: An nginx ``upstream <name> {`` block: ``proxy_pass https://<name>/...`` names it, not a host.
NGINX_UPSTREAM = re.compile(r"^\s*upstream\s+([A-Za-z0-9_.-]+)\s*\{", re.M)


def _documentation_lines(text: str) -> set[int]:
    """The lines (1-based) holding ``description:`` values of YAML documents; none if ``text`` is not YAML."""
    import yaml  # pylint: disable=import-outside-toplevel

    lines: set[int] = set()

    def walk(node: Any) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "description" and isinstance(value, yaml.ScalarNode):
                    lines.update(range(value.start_mark.line + 1, value.end_mark.line + 2))
                else:
                    walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    try:
        for document in yaml.compose_all(text, Loader=yaml.SafeLoader):
            walk(document)
    except yaml.YAMLError:
        return set()
    return lines


def scan_text(source: str, text: str, allowed: Allowed) -> list[Finding]:
    """Every reference in ``text`` that leaves the cluster, by line."""
    findings = []
    upstreams = {name.lower() for name in NGINX_UPSTREAM.findall(text)}
    documentation = _documentation_lines(text) if "description:" in text else set()
    for number, line in enumerate(text.splitlines(), 1):
        if COMMENT.match(line) or number in documentation:
            continue
        seen = set()
        for match in IMAGE.finditer(line):
            reference = match.group("ref")
            seen.add(reference)
            if "://" in reference:
                continue  # judged as a URL below
            problem = allowed.image_problem(reference)
            if problem:
                findings.append(Finding(source, number, reference, problem))
        for match in URL.finditer(line):
            url = match.group(0).rstrip(".,;")
            if (urlsplit(url).hostname or "").lower() in upstreams:
                continue  # an nginx upstream of this file, whose servers are judged where they are listed
            problem = allowed.url_problem(url)
            if problem:
                findings.append(Finding(source, number, url, problem))
    return findings
