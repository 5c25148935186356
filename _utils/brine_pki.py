"""
Certificates and secrets Brine makes on the deploy side, once per cluster, with
``cryptography`` (a Salt dependency). Private keys and passwords are written
0600 in 0700 folders under ``.brine/clusters/<name>/`` and never printed.

- ``pki/bundle-ca.{crt,key}``: the CA nodes trust for the deploy node's services;
- ``pki/registry.{crt,key}``: the image registry's TLS certificate, for its address;
- ``secrets/registry.json``: the registry's user, password and bcrypt hash;
- ``pki/etcd/``: the etcd CA (``ca.{crt,key}``), per member ``<member>/server.{crt,key}``
  (its name, its address, 127.0.0.1, localhost) and ``<member>/peer.{crt,key}`` (its
  name and address), and the client pairs ``healthcheck-client`` and
  ``apiserver-etcd-client`` (see :func:`ensure_etcd_pki`);
- ``pki/kubernetes/``: what kubeadm finds in place instead of making it, so joins need
  nothing from an earlier step: the cluster CA (``ca``), the front-proxy CA
  (``front-proxy-ca``), the service-account key pair (``sa.key``, ``sa.pub``), and
  ``secrets/bootstrap-token`` (see :func:`ensure_kubernetes_pki`);
- ``pki/salt/``: the day-2 agent's keys, Salt's own format (RSA 2048): ``master.{pem,pub}``,
  which every master of the cluster shares (Salt's multi-master needs one master key),
  and ``minions/<node>.{pem,pub}`` per node, so every deployed node's key is known to
  the masters before its minion first starts (see :func:`ensure_salt_keys`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)
REGISTRY_USER = "brine"


def _write_secret(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(path + ".tmp", path)


def _write_public(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".tmp", "wb") as handle:
        handle.write(data)
    os.chmod(path + ".tmp", 0o644)
    os.replace(path + ".tmp", path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class KeyPair:
    cert_path: str
    key_path: str

    def cert(self) -> x509.Certificate:
        with open(self.cert_path, "rb") as handle:
            return x509.load_pem_x509_certificate(handle.read())

    def key(self) -> ec.EllipticCurvePrivateKey:
        with open(self.key_path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)

    def cert_pem(self) -> str:
        with open(self.cert_path, encoding="ascii") as handle:
            return handle.read()

    def key_pem(self) -> str:
        with open(self.key_path, encoding="ascii") as handle:
            return handle.read()

    def exists(self) -> bool:
        return os.path.isfile(self.cert_path) and os.path.isfile(self.key_path)


def ensure_ca(directory: str, name: str, common_name: str) -> tuple[KeyPair, bool]:
    """The CA ``<directory>/<name>.{crt,key}``, made if absent; returns (pair, made)."""
    pair = KeyPair(os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key"))
    if pair.exists():
        return pair, False
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_secret(pair.key_path, _key_pem(key))
    _write_public(pair.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return pair, True


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def ensure_server_cert(directory: str, name: str, ca: KeyPair, hosts: list[str]) -> tuple[KeyPair, bool]:
    """
    A TLS server certificate for ``hosts`` signed by ``ca``; made again when
    absent, when its names differ, when another CA signed it, or within
    30 days of expiry. Returns (pair, made).
    """
    return ensure_cert(directory, name, ca, hosts[0], hosts, (ExtendedKeyUsageOID.SERVER_AUTH,))


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _current(cert: x509.Certificate, ca_cert: x509.Certificate, common_name: str, sans: set[str],
             usages: set[x509.ObjectIdentifier]) -> bool:
    """Whether an existing certificate is still the one wanted: same names and usages, this CA's, not expiring."""
    try:
        current_sans = set(map(str, cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value))
    except x509.ExtensionNotFound:
        current_sans = set()
    try:
        current_usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        current_usages = set()
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return (
        bool(names) and names[0].value == common_name
        and current_sans == sans and current_usages == usages
        and _signed_by(cert, ca_cert)
        and cert.not_valid_after_utc - _now() > RENEW_BEFORE
    )


def ensure_cert(directory: str, name: str, ca: KeyPair, common_name: str, hosts: list[str],
                usages: tuple[x509.ObjectIdentifier, ...]) -> tuple[KeyPair, bool]:
    """
    The certificate ``<directory>/<name>.{crt,key}`` for ``common_name`` with the
    subject alternative names ``hosts`` (IP addresses or DNS names; none for a
    client certificate) and the extended key ``usages``, signed by ``ca``. Made
    again when absent, when its name, names or usages differ, when it does not
    verify against the CA (another CA, or the CA was made again), or within
    30 days of expiry. Returns (pair, made).
    """
    pair = KeyPair(os.path.join(directory, f"{name}.crt"), os.path.join(directory, f"{name}.key"))
    ca_cert = ca.cert()
    if pair.exists() and _current(pair.cert(), ca_cert, common_name, set(map(str, _san(hosts))), set(usages)):
        return pair, False
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = ca.key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False, crl_sign=False,
                                     content_commitment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_secret(pair.key_path, _key_pem(key))
    _write_public(pair.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return pair, True


# --------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------

SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
CLIENT = (ExtendedKeyUsageOID.CLIENT_AUTH,)
#: Client certificates of the etcd CA: file name -> common name.
ETCD_CLIENTS = {
    "healthcheck-client": "kube-etcd-healthcheck-client",
    "apiserver-etcd-client": "kube-apiserver-etcd-client",
}


@dataclass
class EtcdPKI:
    """Where a cluster's etcd certificates are, and what ``ensure_etcd_pki`` made this time."""

    ca: KeyPair
    servers: dict[str, KeyPair]
    peers: dict[str, KeyPair]
    clients: dict[str, KeyPair]
    made: list[str]


def etcd_paths(directory: str, members: list[str]) -> EtcdPKI:
    """The etcd PKI's files under ``directory`` (``<cluster state>/pki/etcd``), made or not."""

    def pair(*parts: str) -> KeyPair:
        base = os.path.join(directory, *parts)
        return KeyPair(base + ".crt", base + ".key")

    return EtcdPKI(
        ca=pair("ca"),
        servers={member: pair(member, "server") for member in members},
        peers={member: pair(member, "peer") for member in members},
        clients={name: pair(name) for name in ETCD_CLIENTS},
        made=[],
    )


def ensure_etcd_pki(directory: str, cluster: str, members: dict[str, str]) -> EtcdPKI:
    """
    The etcd PKI of a cluster under ``directory``, made where absent or stale:

    - ``ca.{crt,key}``: the etcd CA, trusted by members for clients and peers;
    - ``<member>/server.{crt,key}``: what a member serves its clients with, for
      its name, its address, 127.0.0.1 and localhost (server and client usage:
      etcd's own gateway dials the member with it);
    - ``<member>/peer.{crt,key}``: what members show each other, for the
      member's name and address (server and client usage);
    - ``healthcheck-client.{crt,key}``, ``apiserver-etcd-client.{crt,key}``:
      client certificates.

    ``members`` maps each etcd member's name to its address. ``made`` on the
    result names what was made this time (no secret).
    """
    ca, ca_made = ensure_ca(directory, "ca", f"Brine etcd CA ({cluster})")
    pki = etcd_paths(directory, list(members))
    pki.ca = ca
    if ca_made:
        pki.made.append("etcd CA")
    for member, address in members.items():
        _, made = ensure_cert(os.path.join(directory, member), "server", ca, member,
                              [member, address, "127.0.0.1", "localhost"], SERVER_AND_CLIENT)
        if made:
            pki.made.append(f"etcd server certificate of {member}")
        _, made = ensure_cert(os.path.join(directory, member), "peer", ca, member, [member, address], SERVER_AND_CLIENT)
        if made:
            pki.made.append(f"etcd peer certificate of {member}")
    for name, common_name in ETCD_CLIENTS.items():
        _, made = ensure_cert(directory, name, ca, common_name, [], CLIENT)
        if made:
            pki.made.append(f"etcd client certificate {name}")
    return pki


def ensure_registry_credentials(path: str) -> tuple[dict[str, str], bool]:
    """The registry's user, password and htpasswd (bcrypt) line, made once; returns (credentials, made)."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle), False
    password = secrets.token_urlsafe(24)
    # Made where a cluster is deployed from (the deploy node, or a control cluster's masters,
    # whose agent venv has bcrypt from the bundle); salt-ssh's thin on the nodes has none.
    import bcrypt

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()
    credentials = {"username": REGISTRY_USER, "password": password, "htpasswd": f"{REGISTRY_USER}:{hashed}"}
    _write_secret(path, json.dumps(credentials).encode())
    return credentials, True


@dataclass
class KubernetesPKI:
    """A cluster's Kubernetes CA, front-proxy CA, service-account keys and bootstrap token."""

    ca: KeyPair
    front_proxy_ca: KeyPair
    sa_key: str
    sa_pub: str
    bootstrap_token: str
    made: list[str]

    def ca_cert_hash(self) -> str:
        """``sha256:<hex>`` of the CA's public key, what ``--discovery-token-ca-cert-hash`` pins."""
        return ca_cert_hash(self.ca.cert_pem())


def ca_cert_hash(cert_pem: str) -> str:
    """kubeadm's CA pin: the sha256 of the certificate's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return "sha256:" + digest.finalize().hex()


def _bootstrap_token() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(6)) + "." + "".join(secrets.choice(alphabet) for _ in range(16))


def ensure_kubernetes_pki(directory: str, token_path: str, cluster: str) -> KubernetesPKI:
    """
    The Kubernetes secrets of a cluster, made where absent (never replaced: every
    node's trust hangs on them):

    - ``ca.{crt,key}``: the cluster CA (CN ``kubernetes``), which kubeadm uses when it
      finds it in /etc/kubernetes/pki; its hash pins every join;
    - ``front-proxy-ca.{crt,key}``: the aggregation layer's CA;
    - ``sa.key``, ``sa.pub``: the service-account token signing pair (RSA 2048, as kubeadm);
    - ``token_path``: the bootstrap token ``[a-z0-9]{6}.[a-z0-9]{16}`` joins use.
    """
    made = []
    ca, ca_made = ensure_ca(directory, "ca", "kubernetes")
    if ca_made:
        made.append(f"Kubernetes CA ({cluster})")
    front_proxy, fp_made = ensure_ca(directory, "front-proxy-ca", "front-proxy-ca")
    if fp_made:
        made.append("front-proxy CA")
    sa_key, sa_pub = os.path.join(directory, "sa.key"), os.path.join(directory, "sa.pub")
    if not (os.path.isfile(sa_key) and os.path.isfile(sa_pub)):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_secret(sa_key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                                serialization.NoEncryption()))
        _write_public(sa_pub, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
        made.append("service-account key pair")
    if not os.path.isfile(token_path):
        _write_secret(token_path, (_bootstrap_token() + "\n").encode())
        made.append("bootstrap token")
    with open(token_path, encoding="ascii") as handle:
        token = handle.read().strip()
    return KubernetesPKI(ca, front_proxy, sa_key, sa_pub, token, made)


def _rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def ensure_salt_keys(directory: str, nodes: list[str]) -> list[str]:
    """
    The day-2 agent's keys, made where absent and never replaced: ``master.pem`` /
    ``master.pub`` (one pair for all the cluster's masters) and, per node in
    ``nodes``, ``minions/<node>.pem`` / ``.pub``. Salt reads both as they are: the
    private key PKCS#1 PEM, the public key SubjectPublicKeyInfo PEM. Returns what
    it made (names, never contents).
    """
    made = []
    pairs = [("master", os.path.join(directory, "master"))]
    pairs += [(f"minion key of {node}", os.path.join(directory, "minions", node)) for node in nodes]
    for what, stem in pairs:
        if os.path.isfile(stem + ".pem") and os.path.isfile(stem + ".pub"):
            continue
        private, public = _rsa_pair()
        _write_secret(stem + ".pem", private)
        _write_public(stem + ".pub", public)
        made.append("salt master key" if what == "master" else what)
    return made


def salt_finger(public_pem: str) -> str:
    """
    The fingerprint Salt shows for a key (``salt-key -F`` / ``key.finger`` with
    ``hash_type: sha256``): sha256 of the PEM's base64 lines (armour lines and
    blank lines left out, line ends kept), as colon-separated hex pairs.
    """
    lines = [line for line in public_pem.replace("\r\n", "\n").splitlines() if line.strip()]
    body = "".join(line + "\n" for line in lines[1:-1])
    digest = hashes.Hash(hashes.SHA256())
    digest.update(body.encode())
    return ":".join(f"{b:02x}" for b in digest.finalize())
