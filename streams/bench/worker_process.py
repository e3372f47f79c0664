"""A real ``rtrank worker`` / ``rtrank trainer`` in a child process, for the demo, the
benchmarks and the tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rtrank.streams.bench import cpu_use
from rtrank.streams.bench.local_stack import local_broker_pid
from rtrank.streams.bench.worker_metrics import metric_value, metric_values
from rtrank.streams.settings import Settings, to_env


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment that makes a child process read exactly ``settings``."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith("RTRANK_")
    }
    env.update(to_env(settings))
    return env


@dataclass
class WorkerProcess:
    """Start, probe and stop one worker; its output goes to ``log``."""

    settings: Settings
    log: Path
    process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 120.0) -> None:
        """Start the worker and return once ``/health`` answers 200 (model loaded)."""
        command = ["worker", "-l", self.settings.log_level]
        self.process = start_child(command, self.settings, self.log, self.healthy, timeout_s)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self._url("/health"), timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def health(self) -> dict:
        """The body of ``/health`` (raises when the worker does not answer 200)."""
        with urllib.request.urlopen(self._url("/health"), timeout=5) as response:
            return json.loads(response.read())

    def metrics(self) -> str:
        with urllib.request.urlopen(self._url("/metrics"), timeout=5) as response:
            return response.read().decode()

    def batches(self) -> tuple[float, float]:
        """The worker's micro-batches so far, each one model call, and the events in them."""
        return metric_values(self.metrics(), "rtrank_batch_events_count", "rtrank_batch_events_sum")

    def drain(self, total: int, timeout_s: float = 600.0) -> float | None:
        """Wait until the worker has answered ``total`` events in all; return its events/s,
        or None when it answered them all before a second look at its metrics (too fast to
        time).

        Counted from the worker's own metric of answered events, from the first answered
        batch seen to the last, so start-up time is not counted.

        Raises:
            RuntimeError: ``total`` not reached within ``timeout_s``.
        """
        first = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answered = metric_value(self.metrics(), "rtrank_answer_seconds_count")
            now = time.monotonic()
            if first is None and answered > 0:
                first = (now, answered)
            if answered >= total:
                if answered == first[1]:
                    return None
                return (answered - first[1]) / (now - first[0])
            time.sleep(0.2)  # a scrape renders every metric on the worker's event loop
        raise RuntimeError(f"the worker did not answer {total} events in {timeout_s:.0f}s")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> int | None:
        """Send ``sig`` and wait; SIGKILL after ``timeout_s``. Returns the exit code."""
        return stop_child(self.process, sig, timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.settings.web_port}{path}"


def busy_parts(worker: WorkerProcess) -> dict[str, list[int]]:
    """A run's processes by part, for `cpu_use.used`: the worker, its model process (the
    worker's children), the local broker (none for a remote one) and this process (the
    bench's own clients)."""
    return {
        "worker": [worker.process.pid],
        "model": cpu_use.children(worker.process.pid),
        "broker": [pid for pid in [local_broker_pid(worker.settings)] if pid is not None],
        "bench": [os.getpid()],
    }


def start_child(
    command: list[str],
    settings: Settings,
    log: Path,
    ready: Callable[[], bool],
    timeout_s: float,
    module: str = "rtrank.streams",
) -> subprocess.Popen:
    """Start ``python -m MODULE COMMAND`` (by default ``rtrank COMMAND``) reading
    ``settings``, output appended to ``log``, and return it once ``ready()``; raise
    (pointing at the log) when it exits or is not ready in time."""
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", module, *command],
        env=settings_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    name = " ".join([module, *command])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        if ready():
            return process
        time.sleep(0.3)
    stop_child(process, signal.SIGKILL, 10.0)
    raise RuntimeError(f"{name} not ready after {timeout_s:.0f}s; see {log}")


def stop_child(process: subprocess.Popen | None, sig: int, timeout_s: float) -> int | None:
    """Send ``sig`` to a child and wait for it; SIGKILL after ``timeout_s``."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@dataclass
class TrainerProcess:
    """Start and stop one ``rtrank trainer``; its output goes to ``log``.

    ``start`` returns once the trainer logged that it is ready (resumed or published its
    base snapshot), so updates it publishes afterwards are learned from the stream.
    """

    settings: Settings
    log: Path
    checkpoint: str = ""
    process: subprocess.Popen | None = None

    READY = b"trainer ready at version"

    def start(self, timeout_s: float = 120.0) -> None:
        already = self.log.stat().st_size if self.log.exists() else 0
        command = ["trainer"] + (["--checkpoint", self.checkpoint] if self.checkpoint else [])

        def ready() -> bool:
            return self.READY in self.log.read_bytes()[already:]

        self.process = start_child(command, self.settings, self.log, ready, timeout_s)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Send ``sig`` and wait; SIGKILL after ``timeout_s``. Returns the exit code."""
        return stop_child(self.process, sig, timeout_s)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None
