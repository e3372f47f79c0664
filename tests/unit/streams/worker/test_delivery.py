"""The delivery guard (`rtrank.streams.worker.delivery`): a record that was not delivered is
counted by topic, logged once, stops the worker and every commit after it; delivered
records change nothing."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from rtrank.streams.worker.delivery import EXIT_UNDELIVERABLE, DeliveryGuard
from rtrank.streams.worker.metrics import Metrics


class Stops:
    """Stands for stopping the worker: counts the requests."""

    def __init__(self) -> None:
        self.requested = 0

    def __call__(self) -> None:
        self.requested += 1


def failed_sends(metrics: Metrics, topic: str) -> float:
    return metrics.registry.get_sample_value("rtrank_failed_sends_total", {"topic": topic}) or 0


def watched(guard: DeliveryGuard, topic: str, settle) -> None:  # noqa: ANN001 - settles a future
    """Watch a delivery future for ``topic``, resolve it with ``settle`` and let its
    done-callbacks run."""

    async def scenario() -> None:
        delivery = asyncio.get_running_loop().create_future()
        guard.watch(topic, delivery)
        settle(delivery)
        await asyncio.sleep(0)

    asyncio.run(scenario())


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def stops() -> Stops:
    return Stops()


@pytest.fixture
def guard(metrics: Metrics, stops: Stops) -> DeliveryGuard:
    return DeliveryGuard(metrics.failed_sends, stop=stops)


def test_a_delivered_record_changes_nothing(guard, metrics, stops) -> None:
    watched(guard, "recommendations", lambda f: f.set_result("metadata"))
    assert guard.may_commit()
    assert (stops.requested, failed_sends(metrics, "recommendations")) == (0, 0)


def test_a_record_that_was_not_delivered_is_counted_by_topic(guard, metrics) -> None:
    watched(guard, "recommendations", lambda f: f.set_exception(MessageSizeTooLargeError()))
    assert failed_sends(metrics, "recommendations") == 1
    assert failed_sends(metrics, "training-examples") == 0


def test_a_record_that_was_not_delivered_stops_the_commits_and_the_worker(guard, stops) -> None:
    watched(guard, "recommendations", lambda f: f.set_exception(MessageSizeTooLargeError()))
    assert not guard.may_commit()
    assert stops.requested == 1


def test_the_error_line_names_the_topic_the_error_and_the_partitions_moving(guard, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="rtrank.streams.worker.delivery"):
        watched(guard, "recommendations", lambda f: f.set_exception(MessageSizeTooLargeError()))
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "topic recommendations" in line
    assert "MessageSizeTooLargeError" in line
    assert "its partitions move to another worker" in line


def test_a_cancelled_send_is_a_record_not_delivered(guard, metrics, stops) -> None:
    watched(guard, "changelog", lambda f: f.cancel())
    assert not guard.may_commit()
    assert (stops.requested, failed_sends(metrics, "changelog")) == (1, 1)


def test_later_failures_are_counted_without_stopping_again(guard, metrics, stops, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="rtrank.streams.worker.delivery"):
        guard.failed("recommendations", MessageSizeTooLargeError())
        guard.failed("recommendations", MessageSizeTooLargeError())
        guard.failed("events.dlq", MessageSizeTooLargeError())
    assert stops.requested == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    assert guard.failure[0] == "recommendations"
    assert (failed_sends(metrics, "recommendations"), failed_sends(metrics, "events.dlq")) == (2, 1)


def test_exiting_the_worker_ends_the_process_at_once_with_its_log_written() -> None:
    script = (
        "import logging, sys\n"
        "from rtrank.streams.worker.delivery import exit_worker\n"
        "logging.basicConfig(stream=sys.stdout)\n"
        "logging.getLogger('x').error('the error line')\n"
        "exit_worker()\n"
        "print('after the exit')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == EXIT_UNDELIVERABLE != 0
    assert "the error line" in done.stdout
    assert "after the exit" not in done.stdout
