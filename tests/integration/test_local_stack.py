"""The local stack of the benches and the demo (`rtrank.streams.bench.local_stack`): a broker
it started stops when the process using it is terminated, not only when it returns."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from rtrank.deploy.kafka import broker as local_kafka

USES_A_LOCAL_BROKER = textwrap.dedent(
    """
    import sys, time
    from rtrank.streams.bench.local_stack import local_kafka_for
    from rtrank.streams.settings import Settings

    with local_kafka_for(Settings(broker=sys.argv[1])) as started:
        print("started" if started else "found", flush=True)
        time.sleep(600)
    """
)


def test_a_sigterm_stops_the_broker_the_stack_started(tmp_path: Path) -> None:
    broker = local_kafka.Broker(local_kafka.free_port(), tmp_path / "kafka")
    process = subprocess.Popen(
        [sys.executable, "-c", USES_A_LOCAL_BROKER, f"kafka://{broker.bootstrap}"],
        env={**os.environ, "RTRANK_KAFKA_DATA_DIR": str(broker.data_dir)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "started"
        assert local_kafka.running_pid(broker) is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
        assert local_kafka.running_pid(broker) is None
    finally:
        process.kill()
        local_kafka.down(broker)
