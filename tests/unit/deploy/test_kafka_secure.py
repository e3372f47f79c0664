"""The secured local broker's files and properties: a CA, a broker certificate it signed for
the loopback address, private files only their owner reads, SCRAM users at format time."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from rtrank.deploy.kafka import secure
from rtrank.deploy.kafka.broker import Broker, Cluster, recorded_cluster, server_properties
from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("node")
    secure.prepare(data_dir, ("worker", "trainer"))
    return data_dir


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_the_broker_certificate_is_signed_by_the_ca_for_the_loopback_names(node_dir: Path) -> None:
    ca = certificate(secure.ca_file(node_dir))
    cert = certificate(secure.secure_dir(node_dir) / "broker.pem")
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_the_broker_pem_holds_its_key_first_as_kafka_reads_it(node_dir: Path) -> None:
    text = (secure.secure_dir(node_dir) / "broker.pem").read_text()
    assert text.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    assert "-----BEGIN CERTIFICATE-----" in text


@pytest.mark.parametrize(
    "name", ["ca.key", "broker.pem", "admin.password", "worker.password", "worker.pem"]
)
def test_secrets_are_readable_by_their_owner_only(node_dir: Path, name: str) -> None:
    mode = stat.S_IMODE((secure.secure_dir(node_dir) / name).stat().st_mode)
    assert mode == 0o600


def test_prepare_again_keeps_the_files_clients_depend_on(node_dir: Path) -> None:
    before = (
        secure.password_file(node_dir, "worker").read_text(),
        secure.ca_file(node_dir).read_bytes(),
    )
    secure.prepare(node_dir, ("worker",))
    after = (
        secure.password_file(node_dir, "worker").read_text(),
        secure.ca_file(node_dir).read_bytes(),
    )
    assert before == after


def test_each_user_has_a_client_certificate_from_the_ca(node_dir: Path) -> None:
    ca = certificate(secure.ca_file(node_dir))
    for user in ("admin", "worker", "trainer"):
        cert = certificate(secure.client_pem(node_dir, user))
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"CN={user}"
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [x509.ExtendedKeyUsageOID.CLIENT_AUTH]


def test_users_are_admin_then_the_others(node_dir: Path) -> None:
    assert secure.users(node_dir) == ["admin", "trainer", "worker"]


def test_every_user_gets_a_scram_credential_per_mechanism(node_dir: Path) -> None:
    arguments = secure.scram_arguments(node_dir)
    password = secure.password_file(node_dir, "worker").read_text()
    assert arguments.count("--add-scram") == 3 * len(secure.MECHANISMS)
    assert f"SCRAM-SHA-512=[name=worker,password={password}]" in arguments
    assert f"SCRAM-SHA-256=[name=worker,password={password}]" in arguments


def test_a_secure_node_listens_with_sasl_ssl_and_enforces_acls(node_dir: Path) -> None:
    node = Broker(9093, node_dir, controller_port=9094, secure=True)
    properties = server_properties(node, Cluster((node,)))
    assert properties["listeners"] == "SASL_SSL://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094"
    assert properties["inter.broker.listener.name"] == "SASL_SSL"
    assert properties["authorizer.class.name"] == secure.AUTHORIZER
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["super.users"] == "User:admin;User:ANONYMOUS"
    assert properties["listener.name.sasl_ssl.ssl.client.auth"] == "required"
    assert "PLAINTEXT://" not in properties["listeners"].replace("SASL_", "")


def test_a_plain_node_keeps_its_plaintext_listener(tmp_path: Path) -> None:
    node = Broker(9093, tmp_path, controller_port=9094)
    properties = server_properties(node, Cluster((node,)))
    assert properties["listeners"].startswith("PLAINTEXT://127.0.0.1:9093,")
    assert "authorizer.class.name" not in properties


def test_a_recorded_secure_node_is_read_back_as_secure(tmp_path: Path) -> None:
    node = Broker(9093, tmp_path / "node-1", controller_port=9094, secure=True)
    secure.prepare(node.data_dir, ())
    properties = server_properties(node, Cluster((node,)))
    node.data_dir.mkdir(exist_ok=True)
    node.properties_file.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
    assert recorded_cluster(tmp_path) == Cluster((node,))


def test_the_printed_client_settings_load_and_log_in_by_password_file(node_dir: Path) -> None:
    env = secure.client_env(node_dir, "127.0.0.1:9093", "worker")
    assert "RTRANK_KAFKA_PASSWORD" not in env
    config = client_config(Settings.from_env(env))
    assert config["sasl_plain_password"] == secure.password_file(node_dir, "worker").read_text()
    assert config["security_protocol"] == "SASL_SSL"
    assert env["RTRANK_KAFKA_CERT_FILE"] == str(secure.client_pem(node_dir, "worker"))


def test_keys_are_elliptic_curve(node_dir: Path) -> None:
    assert isinstance(certificate(secure.ca_file(node_dir)).public_key(), ec.EllipticCurvePublicKey)


def test_a_secure_broker_is_a_single_node(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from rtrank.streams.cli.kafka import kafka

    args = ["up", "--secure", "--brokers", "3", "--data-dir", str(tmp_path)]
    result = CliRunner().invoke(kafka, args)
    assert result.exit_code == 1
    assert "Error: --secure starts a single broker; leave out --brokers" in result.output
