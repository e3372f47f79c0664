"""How every Kafka client of rtrank connects: the ``RTRANK_KAFKA_*`` settings turned into
each client library's keyword arguments.

    KafkaConsumer(..., **client_config(settings))     # kafka-python: tail, trainer, …
    AIOKafkaProducer(..., **client_config(settings))  # aiokafka (the same keyword names)
    faust.App(..., broker_credentials=faust_credentials(settings))  # the worker

One TLS context constructor serves all three (`ssl_context`: aiokafka's
``create_ssl_context``, which verifies the broker's certificate and host name, against
``RTRANK_KAFKA_CA_FILE`` or else the system's CAs), so no client verifies less than another.
Files (CA, certificate, key, password) are read when a client is built, not when the settings
load: a rotated password file is picked up by the next client. A file that cannot be read
is a `KafkaSecurityError` naming its variable; the password itself is never in a message.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

import faust
from aiokafka.conn import create_conn
from aiokafka.errors import SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context

from rtrank.streams.settings import Settings, SettingsError


class KafkaSecurityError(SettingsError):
    """A security file named by a setting cannot be used; one line naming the variable."""


def sasl_password(settings: Settings) -> str:
    """The SASL password: ``RTRANK_KAFKA_PASSWORD_FILE``'s content (one trailing newline
    dropped) when set, else ``RTRANK_KAFKA_PASSWORD``.

    Raises:
        KafkaSecurityError: both are set, or the file cannot be read or is empty.
    """
    password, path = settings.kafka_password.get_secret_value(), settings.kafka_password_file
    if password and path:
        raise KafkaSecurityError(
            "set RTRANK_KAFKA_PASSWORD or RTRANK_KAFKA_PASSWORD_FILE, not both"
        )
    if not path:
        return password
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KafkaSecurityError(
            f"RTRANK_KAFKA_PASSWORD_FILE={path!r} cannot be read: {_reason(e)}"
        ) from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise KafkaSecurityError(f"RTRANK_KAFKA_PASSWORD_FILE={path!r} is empty")
    return text


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``SSL`` / ``SASL_SSL`` (None otherwise): the broker's certificate
    checked against the CA file (or the system's CAs) and its host name; the client's
    certificate and key presented when set (mutual TLS).

    Raises:
        KafkaSecurityError: a CA, certificate or key file is missing or not PEM.
    """
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    files = {
        "RTRANK_KAFKA_CA_FILE": settings.kafka_ca_file,
        "RTRANK_KAFKA_CERT_FILE": settings.kafka_cert_file,
        "RTRANK_KAFKA_KEY_FILE": settings.kafka_key_file,
    }
    for name, path in files.items():
        if path:
            try:
                Path(path).read_bytes()
            except OSError as e:
                raise KafkaSecurityError(f"{name}={path!r} cannot be read: {_reason(e)}") from None
    try:
        return create_ssl_context(
            cafile=settings.kafka_ca_file or None,
            certfile=settings.kafka_cert_file or None,
            keyfile=settings.kafka_key_file or None,
        )
    except ssl.SSLError as e:
        named = ", ".join(f"{name}={path!r}" for name, path in files.items() if path)
        raise KafkaSecurityError(f"{named}: not usable PEM files ({_reason(e)})") from None


def client_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of kafka-python's KafkaConsumer, KafkaProducer and
    KafkaAdminClient, and of aiokafka's AIOKafkaConsumer and AIOKafkaProducer: both
    libraries name them alike.

    Raises:
        KafkaSecurityError: a file named by a setting cannot be used.
    """
    config: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_username
        config["sasl_plain_password"] = sasl_password(settings)
    return config


def faust_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    """``broker_credentials`` of the Faust app (its consumer, producer and topic creation);
    None for ``PLAINTEXT``. Faust's SASL credentials mean ``SASL_SSL`` when they carry a TLS
    context and ``SASL_PLAINTEXT`` when not."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=settings.kafka_username,
        password=sasl_password(settings),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def check_connection(settings: Settings, timeout_s: float = 10.0) -> None:
    """Connect to the bootstrap servers once, as the clients would, and say why not.

    kafka-python retries a refused login or an untrusted certificate until its bootstrap
    timeout and then reports only "Unable to bootstrap"; commands call this first, so that
    such a mistake ends them at once with its cause. Returns at the first server that
    accepts the connection (TLS handshake and SASL login included).

    Raises:
        KafkaConnectError: no server accepted it; one line with the last server's reason.
        KafkaSecurityError: a file named by a setting cannot be used.
    """
    config = client_config(settings)
    reason, refused = "no bootstrap server", False
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.rpartition(":")
        try:
            asyncio.run(_connect_once(host, int(port), config, timeout_s))
            return
        except Exception as e:  # noqa: BLE001 - every failure is reported, by its kind
            reason = _connect_reason(e, timeout_s)
            refused = isinstance(e, (SaslAuthenticationFailed, ssl.SSLError))
    who = settings.kafka_security_protocol
    if who.startswith("SASL_"):
        who = f"{settings.kafka_username} ({who}, {settings.kafka_sasl_mechanism})"
    raise KafkaConnectError(
        f"cannot connect to Kafka at {settings.bootstrap_servers} as {who}: {reason}", refused
    )


class KafkaConnectError(RuntimeError):
    """No bootstrap server accepted a connection; the message is one line with the cause.

    ``refused``: the last server answered and refused the login or the TLS handshake (a
    mistake in the settings), rather than being unreachable (perhaps not up yet)."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


async def _connect_once(host: str, port: int, config: dict[str, Any], timeout_s: float) -> None:
    conn = await asyncio.wait_for(create_conn(host, port, **config), timeout_s)
    conn.close()


def _connect_reason(error: BaseException, timeout_s: float) -> str:
    if isinstance(error, SaslAuthenticationFailed):
        return f"login refused (wrong user name or password?): {error}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"the broker's TLS certificate is not trusted ({error.verify_message}); "
            "is RTRANK_KAFKA_CA_FILE its CA?"
        )
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    if isinstance(error, TimeoutError):
        return f"no answer within {timeout_s:g}s (a TLS or SASL listener spoken to in plain?)"
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return f"{type(error).__name__}: {error}"


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
