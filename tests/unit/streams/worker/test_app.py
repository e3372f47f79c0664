"""The Faust app is configured from the one Settings object."""

from __future__ import annotations

import socket

from rtrank.streams.settings import Settings
from rtrank.streams.worker.app import RtrankApp


def test_consumer_poll_size_and_stream_buffer_come_from_the_settings(tmp_path) -> None:
    settings = Settings(
        broker="memory://",
        store="memory://",
        data_dir=tmp_path,
        consumer_max_poll_records=123,
        stream_buffer_max=77,
    )
    app = RtrankApp(settings)
    assert (app.conf.broker_max_poll_records, app.conf.stream_buffer_maxsize) == (123, 77)


def test_producer_linger_comes_from_the_settings_in_seconds(tmp_path) -> None:
    settings = Settings(
        broker="memory://", store="memory://", data_dir=tmp_path, producer_linger_ms=40.0
    )
    assert RtrankApp(settings).conf.producer_linger == 0.04


def test_the_consumer_commits_at_the_interval_of_the_settings(tmp_path) -> None:
    settings = Settings(
        broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path, commit_interval_s=0.4
    )
    assert RtrankApp(settings).consumer.commit_interval == 0.4


def test_faust_s_own_monitor_does_not_run_on_every_event(tmp_path) -> None:
    settings = Settings(broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path)
    app = RtrankApp(settings)
    app.on_init_dependencies()  # builds the services (no connection yet)
    assert app.monitor not in set(app.sensors)


def test_the_producer_buffer_holds_two_batches_of_table_writes_before_ingest_waits(
    tmp_path,
) -> None:
    settings = Settings(
        broker="kafka://127.0.0.1:9", store="memory://", data_dir=tmp_path, batch_max_events=300
    )
    app = RtrankApp(settings)
    app.on_init_dependencies()
    assert app.producer.buffer.max_messages == 600


def test_the_consumer_fetch_wait_to_set_at_start_comes_from_the_settings(tmp_path) -> None:
    settings = Settings(broker="memory://", data_dir=tmp_path, consumer_fetch_wait_ms=70)
    assert RtrankApp(settings).fetch_wait_ms == 70


def test_the_web_server_listens_on_loopback_by_default(tmp_path) -> None:
    app = RtrankApp(Settings(broker="memory://", data_dir=tmp_path))
    assert app.conf.web_bind == "127.0.0.1"
    assert app.conf.canonical_url.host == "127.0.0.1"


def test_a_worker_bound_to_one_address_is_forwarded_to_at_that_address(tmp_path) -> None:
    app = RtrankApp(Settings(broker="memory://", data_dir=tmp_path, web_bind="10.1.2.3"))
    assert (app.conf.web_bind, app.conf.canonical_url.host) == ("10.1.2.3", "10.1.2.3")


def test_a_worker_bound_to_every_interface_is_forwarded_to_at_its_host_name(tmp_path) -> None:
    app = RtrankApp(Settings(broker="memory://", data_dir=tmp_path, web_bind="0.0.0.0"))
    assert app.conf.web_bind == "0.0.0.0"
    assert app.conf.canonical_url.host == socket.gethostname()
