"""Sending buffered records when the worker's producer is not running."""

from __future__ import annotations

from rtrank.streams.worker.send_now import send_buffered_now


def test_a_producer_that_is_not_running_has_nothing_to_send() -> None:
    send_buffered_now(None)  # Faust's producer while the worker stops: no AttributeError
