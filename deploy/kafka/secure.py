"""The secured local broker (``rtrank kafka up --secure``): TLS, SCRAM users, ACLs.

    rtrank kafka up --secure [--user worker --user trainer …]

Its one client listener is ``SASL_SSL`` (TLS, then a SCRAM-SHA-512 or -256 login); Kafka's
``StandardAuthorizer`` refuses whatever no ACL allows. What it needs lives in ``secure/``
under the node's data directory, made once and kept for later starts:

- ``ca.pem`` / ``ca.key``: a CA made here (``cryptography``); clients trust ``ca.pem``.
- ``broker.pem``: the broker's key and certificate (for ``localhost`` and ``127.0.0.1``),
  signed by that CA, in the PEM form Kafka reads without a Java keystore (KIP-651).
- ``USER.password``: a random password per SCRAM user (mode 0600). The users are created
  when the storage is formatted (``kafka-storage format --add-scram``): ``admin``, the
  broker's own user and a super user, and those named with ``--user``.

Mutual TLS as well (``ssl.client.auth=required`` on the listener): every client presents
a certificate signed by the CA, ``USER.pem`` (key and certificate, made beside the
password); the SCRAM login names the principal.

The controller listener stays ``PLAINTEXT`` on 127.0.0.1, as in the plain broker: a KRaft
broker reaches its controller there as ``User:ANONYMOUS``, which must therefore be a super
user. It cannot be claimed on the client listener, where every connection logs in.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ADMIN = "admin"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
LISTENER = "SASL_SSL"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
VALID_DAYS = 825  # what browsers and most TLS stacks accept for a leaf certificate


def secure_dir(data_dir: Path) -> Path:
    return data_dir / "secure"


def is_secure(data_dir: Path) -> bool:
    """True for a node made by ``up --secure`` (its TLS files exist)."""
    return (secure_dir(data_dir) / "broker.pem").exists()


def ca_file(data_dir: Path) -> Path:
    return secure_dir(data_dir) / "ca.pem"


def password_file(data_dir: Path, user: str) -> Path:
    return secure_dir(data_dir) / f"{user}.password"


def prepare(data_dir: Path, users: tuple[str, ...]) -> None:
    """Make the CA, the broker's certificate and each user's password file and client
    certificate, those missing (an existing node keeps its files: its clients and its
    SCRAM users depend on them)."""
    folder = secure_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "broker.pem").exists():
        make_certificates(folder)
    for user in (ADMIN, *users):
        path = password_file(data_dir, user)
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24).encode())
        if not client_pem(data_dir, user).exists():
            make_client_certificate(folder, user)


def make_certificates(folder: Path) -> None:
    """``ca.pem``, ``ca.key`` and ``broker.pem`` (key and certificate) in ``folder``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtrank local CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(folder / "ca.key", _pkcs8(ca_key))
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    # client auth too: the broker connects to its own listener, which requires a certificate
    usages = [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
    _issue(folder, "broker.pem", "localhost", names, usages)


def make_client_certificate(folder: Path, user: str) -> None:
    """``USER.pem`` in ``folder``: a key and a client certificate for ``user`` from the CA."""
    _issue(folder, f"{user}.pem", user, [], [x509.ExtendedKeyUsageOID.CLIENT_AUTH])


def client_pem(data_dir: Path, user: str) -> Path:
    return secure_dir(data_dir) / f"{user}.pem"


def _issue(
    folder: Path,
    name: str,
    common_name: str,
    names: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
) -> None:
    """Write ``name``: a new key, then its certificate signed by the CA in ``folder`` (the
    PEM form Kafka's keystore and Python's ``load_cert_chain`` both read)."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    # an unencrypted PKCS#8 key, then the certificate
    _write_private(folder / name, _pkcs8(key) + cert.public_bytes(serialization.Encoding.PEM))


def properties(data_dir: Path, port: int, controller_port: int) -> dict[str, str]:
    """The ``server.properties`` entries of a secure node (over the plain node's)."""
    folder = secure_dir(data_dir)
    admin_password = password_file(data_dir, ADMIN).read_text()
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{admin_password}";'
    )
    listener = LISTENER.lower()
    return {
        "listeners": f"{LISTENER}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{LISTENER}://127.0.0.1:{port}",
        "listener.security.protocol.map": f"{LISTENER}:{LISTENER},CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": LISTENER,
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "sasl.mechanism.inter.broker.protocol": MECHANISMS[0],
        **{f"listener.name.{listener}.{m.lower()}.sasl.jaas.config": login for m in MECHANISMS},
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(folder / "broker.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(folder / "ca.pem"),
        # mutual TLS: every client presents a certificate signed by the CA. Only under the
        # listener's prefix: a SASL_SSL listener ignores the plain key (KIP-684).
        f"listener.name.{listener}.ssl.client.auth": "required",
        "authorizer.class.name": AUTHORIZER,
        "super.users": f"User:{ADMIN};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }


def scram_arguments(data_dir: Path) -> list[str]:
    """``--add-scram`` arguments of ``kafka-storage format``: every user with a password
    file, under each mechanism the listener enables."""
    arguments = []
    for path in sorted(secure_dir(data_dir).glob("*.password")):
        user, password = path.name.removesuffix(".password"), path.read_text()
        for mechanism in MECHANISMS:
            arguments += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
    return arguments


def users(data_dir: Path) -> list[str]:
    """The SCRAM users made for the node, ``admin`` first."""
    names = sorted(
        p.name.removesuffix(".password") for p in secure_dir(data_dir).glob("*.password")
    )
    return sorted(names, key=lambda name: name != ADMIN)


def client_env(data_dir: Path, bootstrap: str, user: str) -> dict[str, str]:
    """The ``RTRANK_*`` variables with which a client logs in as ``user`` (the password by
    its file, never in clear) and presents ``user``'s certificate."""
    return {
        "RTRANK_BROKER": f"kafka://{bootstrap}",
        "RTRANK_KAFKA_SECURITY_PROTOCOL": LISTENER,
        "RTRANK_KAFKA_SASL_MECHANISM": MECHANISMS[0],
        "RTRANK_KAFKA_USERNAME": user,
        "RTRANK_KAFKA_PASSWORD_FILE": str(password_file(data_dir, user)),
        "RTRANK_KAFKA_CA_FILE": str(ca_file(data_dir)),
        "RTRANK_KAFKA_CERT_FILE": str(client_pem(data_dir, user)),
        "RTRANK_KAFKA_KEY_FILE": str(client_pem(data_dir, user)),
    }


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=not cert_sign,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by its owner alone (created so, never world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
