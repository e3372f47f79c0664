"""The fetch wait reaches the aiokafka consumer a Faust consumer runs in its thread."""

from __future__ import annotations

from types import SimpleNamespace

from rtrank.streams.worker.faust_limits import fetch_wait_ms, set_fetch_wait


def _faust_consumer(wait_ms: int) -> SimpleNamespace:
    fetcher = SimpleNamespace(_fetch_max_wait_ms=wait_ms)
    aiokafka = SimpleNamespace(_fetcher=fetcher, _fetch_max_wait_ms=wait_ms)
    return SimpleNamespace(_thread=SimpleNamespace(_consumer=aiokafka))


def test_setting_the_fetch_wait_changes_the_running_fetcher_and_the_consumer() -> None:
    consumer = _faust_consumer(1500)
    assert set_fetch_wait(consumer, 100)
    assert fetch_wait_ms(consumer) == 100
    assert consumer._thread._consumer._fetch_max_wait_ms == 100


def test_a_consumer_not_started_yet_is_left_alone_and_says_so() -> None:
    not_started = SimpleNamespace(_thread=SimpleNamespace(_consumer=None))
    assert not set_fetch_wait(not_started, 100)
    assert fetch_wait_ms(not_started) is None
