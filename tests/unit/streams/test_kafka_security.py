"""The RTRANK_KAFKA_* settings become each client library's connection arguments; a password
is never shown, and a file or a connection that cannot be used stops with one line."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import faust
import pytest
from pydantic import SecretStr

from rtrank.deploy.kafka.processes import free_port
from rtrank.deploy.kafka.secure import make_certificates
from rtrank.streams.cli.config import json_view, rows
from rtrank.streams.kafka_security import (
    KafkaConnectError,
    KafkaSecurityError,
    check_connection,
    client_config,
    faust_credentials,
    sasl_password,
)
from rtrank.streams.settings import Settings, SettingsError, to_env

SECRET = "s3cr3t-p4ss"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA (ca.pem) and a key and certificate it signed (broker.pem), made for real."""
    folder = tmp_path_factory.mktemp("tls")
    make_certificates(folder)
    return folder


def sasl_ssl(tls: Path, **changes: object) -> Settings:
    values = {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_username": "worker",
        "kafka_password": SECRET,
        "kafka_ca_file": str(tls / "ca.pem"),
    }
    return Settings(**{**values, **changes})


def error_of(**variables: str) -> str:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(variables)
    return str(caught.value)


def test_plaintext_clients_get_the_plaintext_protocol_and_faust_no_credentials() -> None:
    assert client_config(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings()) is None


def test_sasl_ssl_clients_log_in_and_verify_the_broker_against_the_ca(tls: Path) -> None:
    config = client_config(sasl_ssl(tls, kafka_sasl_mechanism="SCRAM-SHA-256"))
    context = config.pop("ssl_context")
    assert config == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "worker",
        "sasl_plain_password": SECRET,
    }
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "rtrank local CA"),),)
    ]


def test_sasl_plaintext_logs_in_without_tls() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_username="u", kafka_password=SECRET
    )
    assert "ssl_context" not in client_config(settings)
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert (credentials.username, credentials.password) == ("u", SECRET)


def test_faust_gets_sasl_ssl_credentials_with_the_mechanism(tls: Path) -> None:
    credentials = faust_credentials(sasl_ssl(tls))
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_mutual_tls_presents_the_client_certificate(tls: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SSL",
        kafka_ca_file=str(tls / "ca.pem"),
        kafka_cert_file=str(tls / "broker.pem"),
        kafka_key_file=str(tls / "broker.pem"),
    )
    assert client_config(settings)["security_protocol"] == "SSL"
    credentials = faust_credentials(settings)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.context.verify_mode == ssl.CERT_REQUIRED


def test_the_password_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(SECRET + "\n")
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_username="u", kafka_password_file=str(path)
    )
    assert sasl_password(settings) == SECRET
    assert client_config(settings)["sasl_plain_password"] == SECRET


def test_a_password_and_a_password_file_together_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(SECRET)
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="u",
        kafka_password=SECRET,
        kafka_password_file=str(path),
    )
    with pytest.raises(KafkaSecurityError, match="not both"):
        client_config(settings)


def test_an_unreadable_password_file_names_its_variable(tmp_path: Path) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="u",
        kafka_password_file=str(tmp_path / "missing"),
    )
    with pytest.raises(KafkaSecurityError, match="^RTRANK_KAFKA_PASSWORD_FILE=.* cannot be read"):
        client_config(settings)


def test_a_missing_ca_file_names_its_variable(tls: Path, tmp_path: Path) -> None:
    with pytest.raises(KafkaSecurityError, match="^RTRANK_KAFKA_CA_FILE=.* cannot be read"):
        client_config(sasl_ssl(tls, kafka_ca_file=str(tmp_path / "nope.pem")))


def test_a_ca_file_that_is_not_pem_is_refused_in_one_line(tls: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError) as caught:
        client_config(sasl_ssl(tls, kafka_ca_file=str(bad)))
    assert "RTRANK_KAFKA_CA_FILE" in str(caught.value) and "\n" not in str(caught.value)


def test_the_password_is_not_in_the_settings_repr_or_the_config_views(tls: Path) -> None:
    settings = sasl_ssl(tls)
    assert isinstance(settings.kafka_password, SecretStr)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in str(rows(settings)) and SECRET not in str(json_view(settings))


def test_a_child_process_still_gets_the_password(tls: Path) -> None:
    settings = sasl_ssl(tls)
    assert to_env(settings)["RTRANK_KAFKA_PASSWORD"] == SECRET
    assert Settings.from_env(to_env(settings)) == settings


def test_faust_credentials_do_not_show_the_password(tls: Path) -> None:
    assert SECRET not in repr(faust_credentials(sasl_ssl(tls)))


def test_a_sasl_protocol_without_a_user_stops_the_load() -> None:
    assert error_of(RTRANK_KAFKA_SECURITY_PROTOCOL="SASL_SSL", RTRANK_KAFKA_PASSWORD="x") == (
        "RTRANK_KAFKA_SECURITY_PROTOCOL=SASL_SSL needs RTRANK_KAFKA_USERNAME"
    )


def test_a_sasl_protocol_without_a_password_stops_the_load() -> None:
    message = error_of(RTRANK_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", RTRANK_KAFKA_USERNAME="u")
    assert message.endswith("needs RTRANK_KAFKA_PASSWORD or RTRANK_KAFKA_PASSWORD_FILE")


def test_a_password_without_a_sasl_protocol_stops_the_load_without_showing_it() -> None:
    message = error_of(RTRANK_KAFKA_USERNAME="u", RTRANK_KAFKA_PASSWORD=SECRET)
    assert "SASL_PLAINTEXT or SASL_SSL, not PLAINTEXT" in message
    assert SECRET not in message


def test_tls_files_without_a_tls_protocol_stop_the_load() -> None:
    message = error_of(RTRANK_KAFKA_CA_FILE="/ca.pem", RTRANK_KAFKA_KEY_FILE="/k.pem")
    assert message == (
        "RTRANK_KAFKA_CA_FILE, RTRANK_KAFKA_KEY_FILE set, but used only with "
        "RTRANK_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not PLAINTEXT"
    )


def test_a_client_certificate_without_its_key_stops_the_load() -> None:
    message = error_of(RTRANK_KAFKA_SECURITY_PROTOCOL="SSL", RTRANK_KAFKA_CERT_FILE="/c.pem")
    assert message == "RTRANK_KAFKA_CERT_FILE and RTRANK_KAFKA_KEY_FILE go together"


def test_an_unknown_mechanism_names_its_variable() -> None:
    assert error_of(RTRANK_KAFKA_SASL_MECHANISM="GSSAPI").startswith(
        "RTRANK_KAFKA_SASL_MECHANISM='GSSAPI' must be one of"
    )


def test_a_broker_that_cannot_be_reached_ends_the_check_with_one_line() -> None:
    settings = Settings(broker=f"kafka://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(KafkaConnectError) as caught:
        check_connection(settings, timeout_s=5.0)
    message = str(caught.value)
    assert message.startswith(f"cannot connect to Kafka at {settings.bootstrap_servers} as")
    assert "\n" not in message
    assert time.monotonic() - started < 5.0  # refused at once, not retried until a timeout
