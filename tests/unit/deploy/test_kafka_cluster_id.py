import string
import uuid

from rtrank.deploy.kafka import broker


def test_cluster_id_never_begins_with_a_dash(monkeypatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x04" + bytes(15))
    draws = iter([dashed, plain])
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: next(draws))

    cluster_id = broker._kafka_uuid()

    assert cluster_id == "BAAAAAAAAAAAAAAAAAAAAA"


def test_cluster_id_is_22_url_safe_characters() -> None:
    cluster_id = broker._kafka_uuid()

    assert len(cluster_id) == 22
    assert set(cluster_id) <= set(string.ascii_letters + string.digits + "-_")
