"""Settings come from RTRANK_* variables, are validated, and are all documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtrank.streams.settings import Settings, documented_settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.broker == "kafka://localhost:9092"
    assert settings.bootstrap_servers == "localhost:9092"


def test_each_field_is_read_from_its_variable_with_its_type() -> None:
    settings = Settings.from_env(
        {
            "RTRANK_PARTITIONS": "3",
            "RTRANK_BATCH_MAX_MS": "7.5",
            "RTRANK_ALLOW_REPEATS": "yes",
            "RTRANK_DATA_DIR": "/tmp/x",
            "RTRANK_BROKER": "kafka://k1:9092",
        }
    )
    assert (settings.partitions, settings.batch_max_ms, settings.allow_repeats) == (3, 7.5, True)
    assert settings.data_dir == Path("/tmp/x")
    assert settings.bootstrap_servers == "k1:9092"


def test_a_malformed_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="RTRANK_PARTITIONS"):
        Settings.from_env({"RTRANK_PARTITIONS": "eight"})


def test_readme_documents_every_setting() -> None:
    text = README.read_text()
    missing = [name for name, _ in documented_settings() if f"`{name}`" not in text]
    assert not missing


def test_an_isolated_run_renames_every_topic_and_the_app_id() -> None:
    base = Settings()
    run = base.isolated("demo-1", partitions=2)
    topics = [f for f in vars(base) if f.endswith("_topic")]
    assert len(topics) >= 9
    assert all(getattr(run, f) == f"demo-1.{getattr(base, f)}" for f in topics)
    assert run.app_id == "rtrank-demo-1"
    assert run.partitions == 2
