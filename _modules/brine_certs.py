"""
Certificate expiry on a node of a Brine cluster: every certificate Kubernetes
and etcd use here - kubeadm's PKI (``/etc/kubernetes/pki``), the client
certificates inside kubeadm's kubeconfig files, kubelet's client certificate,
etcd's (``/etc/etcd/pki``) - with the days each has left. The day-2 agent's
schedule runs :func:`check` daily; a certificate with fewer than ``warn_days``
left raises the event ``brine/certs/expiring`` on the masters, which log it
(``salt-run cluster.status <name>`` lists it), well before anything stops.

CLI Example:

.. code-block:: bash

    salt '*.demo' brine_certs.expiry
    salt '*.demo' brine_certs.check warn_days=60
"""

import base64
import datetime
import glob
import os

__virtualname__ = "brine_certs"

PEM_GLOBS = ("/etc/kubernetes/pki/*.crt", "/etc/kubernetes/pki/etcd/*.crt", "/etc/etcd/pki/*.crt",
             "/var/lib/kubelet/pki/kubelet-client-current.pem")
KUBECONFIGS = ("/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf",
               "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/scheduler.conf")


def __virtual__():
    return __virtualname__


def _first_certificate(data):
    from cryptography import x509  # pylint: disable=import-outside-toplevel

    start = data.find(b"-----BEGIN CERTIFICATE-----")
    if start < 0:
        return None
    end = data.find(b"-----END CERTIFICATE-----", start)
    return x509.load_pem_x509_certificate(data[start:end + len(b"-----END CERTIFICATE-----")])


def _entry(where, cert, now):
    not_after = cert.not_valid_after_utc
    subject = cert.subject.rfc4514_string()
    return {"where": where, "subject": subject, "not_after": not_after.isoformat(),
            "days_left": round((not_after - now).total_seconds() / 86400, 1)}


def expiry():
    """
    Every certificate this node uses for Kubernetes and etcd, soonest first:
    ``where`` (a file, or ``<kubeconfig>#client``), ``subject``, ``not_after``,
    ``days_left``.

    CLI Example:

    .. code-block:: bash

        salt 'master1.demo' brine_certs.expiry
    """
    import yaml  # pylint: disable=import-outside-toplevel

    now = datetime.datetime.now(datetime.UTC)
    found = []
    for pattern in PEM_GLOBS:
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, "rb") as handle:
                    cert = _first_certificate(handle.read())
            except (OSError, ValueError):
                continue
            if cert is not None:
                found.append(_entry(path, cert, now))
    for path in KUBECONFIGS:
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
            for user in config.get("users", []):
                data = user.get("user", {}).get("client-certificate-data")
                if data:
                    cert = _first_certificate(base64.b64decode(data))
                    if cert is not None:
                        found.append(_entry(f"{path}#client", cert, now))
        except (OSError, ValueError, AttributeError):
            continue
    return sorted(found, key=lambda item: item["days_left"])


def check(warn_days=30):
    """
    :func:`expiry`, and the event ``brine/certs/expiring`` (to the masters) when
    a certificate has fewer than ``warn_days`` left. Returns what expires soon.

    CLI Example:

    .. code-block:: bash

        salt '*.demo' brine_certs.check warn_days=60
    """
    soon = [item for item in expiry() if item["days_left"] < float(warn_days)]
    if soon:
        __salt__["event.send"]("brine/certs/expiring", {"certificates": soon, "warn_days": float(warn_days)})
    return {"warn_days": float(warn_days), "expiring": soon}
