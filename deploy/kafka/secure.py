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
    """Make the CA, the broker's certificate and each user's password file, those missing
    (an existing node keeps its files: its clients and its SCRAM users depend on them)."""
    folder = secure_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "broker.pem").exists():
        make_certificates(folder)
    for user in (ADMIN, *users):
        path = password_file(data_dir, user)
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24).encode())


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
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write_private(folder / "ca.key", _pkcs8(ca_key))
    # Kafka's PEM keystore: an unencrypted PKCS#8 key, then the certificate chain.
    _write_private(folder / "broker.pem", _pkcs8(key) + cert.public_bytes(pem))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))


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
    its file, never in clear)."""
    return {
        "RTRANK_BROKER": f"kafka://{bootstrap}",
        "RTRANK_KAFKA_SECURITY_PROTOCOL": LISTENER,
        "RTRANK_KAFKA_SASL_MECHANISM": MECHANISMS[0],
        "RTRANK_KAFKA_USERNAME": user,
        "RTRANK_KAFKA_PASSWORD_FILE": str(password_file(data_dir, user)),
        "RTRANK_KAFKA_CA_FILE": str(ca_file(data_dir)),
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
