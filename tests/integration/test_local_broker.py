"""The local broker (``rtrank kafka up``) as it runs: its JVM flags."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from rtrank.deploy.kafka import broker as local_kafka

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")


def test_the_local_broker_runs_with_kafkas_own_garbage_collector_settings(kafka_broker) -> None:
    pid = local_kafka.running_pid(kafka_broker)
    flags = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert set(local_kafka.KAFKA_JVM_FLAGS) <= set(flags)
    assert "-XX:MaxGCPauseMillis=20" in flags
