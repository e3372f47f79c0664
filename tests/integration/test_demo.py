"""`rtrank demo`, the README's first command, run end to end on the session broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from rtrank.deploy.kafka.broker import jar_dir


def figure(summary: str, label: str) -> int:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d,]+)", summary, re.MULTILINE)
    assert found, f"{label!r} missing from the summary:\n{summary}"
    return int(found.group(1).replace(",", ""))


def test_the_demo_replays_a_stream_shows_lists_and_summarises(kafka_broker, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RTRANK_")}
    env |= {
        "HOME": str(tmp_path),  # the demo's model cache and run folders
        "RTRANK_KAFKA_CACHE": str(jar_dir().parent),
        "RTRANK_BROKER": f"kafka://{kafka_broker.bootstrap}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "rtrank.streams", "demo", "--users", "60", "--items", "40"]
        + ["--events", "600", "--rate", "300"],
        capture_output=True,
        text=True,
        timeout=420,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using the running broker" in done.stdout
    summary = done.stdout[done.stdout.index("\nsummary\n") :]
    sent = re.search(r"events sent\s+600 at 300/s \(\+(\d+) malformed\)", summary)
    assert sent, summary
    malformed = int(sent.group(1))
    assert malformed > 0
    assert figure(summary, "events processed") == 600 + malformed
    assert figure(summary, "dead letters (events.dlq)") == malformed
    lists = figure(summary, "recommendation lists")
    assert 60 <= lists <= 600  # every user's last event answered; at most one list per event
    assert "online Hit@10 / NDCG@10" in summary
