"""docker-compose.yml parses with `docker compose config` and runs the pinned Kafka release."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from rtrank.deploy.kafka.broker import kafka_version

ROOT = Path(__file__).resolve().parents[3]


def compose_config() -> dict:
    if shutil.which("docker") is None:
        pytest.skip("the docker client is not installed")
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=60
    )
    if plugin.returncode != 0:  # without the plugin, docker reads "compose" as unknown
        if os.environ.get("CI"):
            pytest.fail("CI must have the docker compose plugin (.ci/compose-plugin)")
        pytest.skip("the docker compose plugin is not installed (.ci/compose-plugin installs it)")
    done = subprocess.run(
        ["docker", "compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_compose_file_parses() -> None:
    assert set(compose_config()["services"]) >= {"kafka", "worker", "trainer"}


def test_compose_kafka_is_the_release_the_pom_pins() -> None:
    assert compose_config()["services"]["kafka"]["image"] == f"apache/kafka:{kafka_version()}"


def test_worker_state_lives_on_a_volume() -> None:
    worker = compose_config()["services"]["worker"]
    assert any(v["target"] == "/var/lib/rtrank" for v in worker["volumes"])


def test_the_worker_and_the_trainer_listen_on_every_interface() -> None:
    """Read as YAML (no docker needed): their published ports reach the container."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("worker", "trainer"):
        assert services[name]["environment"]["RTRANK_WEB_BIND"] == "0.0.0.0"
