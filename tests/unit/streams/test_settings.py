"""Settings come from RTRANK_* variables, are typed and validated at load, and a bad value
stops the load with one line naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rtrank.streams.setting_types import parse_names, parse_pinned, parse_weights
from rtrank.streams.settings import Settings, SettingsError, to_env, variable

EXAMPLE_EXPERIMENT = Path(__file__).parent / "experiments" / "example.json"


def error_of(**variables: str) -> str:
    """The message `Settings.from_env` stops with for these variables."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(variables)
    return str(caught.value)


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


def test_a_bad_value_stops_the_load_with_one_line_naming_the_variable_and_the_fault() -> None:
    assert error_of(RTRANK_BATCH_MAX_EVENTS="ten") == (
        "RTRANK_BATCH_MAX_EVENTS='ten' is not a valid integer"
    )


def test_more_in_sync_replicas_than_replicas_stops_the_load() -> None:
    assert error_of(RTRANK_REPLICATION_FACTOR="2", RTRANK_MIN_INSYNC_REPLICAS="3") == (
        "RTRANK_MIN_INSYNC_REPLICAS='3' is not valid: more than RTRANK_REPLICATION_FACTOR=2"
    )


def test_every_bad_variable_is_named_on_the_same_line() -> None:
    message = error_of(RTRANK_TOP_K="-1", RTRANK_BATCH_MAX_MS="soon")
    assert "\n" not in message
    assert "RTRANK_TOP_K='-1' must be > 0" in message
    assert "RTRANK_BATCH_MAX_MS='soon' is not a valid number" in message


@pytest.mark.parametrize(
    ("name", "value", "fault"),
    [
        ("PARTITIONS", "0", "must be > 0"),
        ("MMR_LAMBDA", "1.5", "must be <= 1"),
        ("WEB_PORT", "70000", "must be <= 65535"),
        ("STANDBY_REPLICAS", "-1", "must be >= 0"),
    ],
)
def test_a_value_out_of_its_range_is_refused(name: str, value: str, fault: str) -> None:
    assert fault in error_of(**{f"RTRANK_{name}": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCORE_SHORTLIST", "maybe"),
        ("TRAINER_EXAMPLES_FROM", "newest"),
        ("LOG_LEVEL", "verbose"),
        ("DEVICE", "gpu"),
    ],
)
def test_an_enumeration_refuses_a_value_outside_it(name: str, value: str) -> None:
    assert error_of(**{f"RTRANK_{name}": value}).startswith(f"RTRANK_{name}={value!r} ")


def test_an_enumeration_reads_each_of_its_values() -> None:
    settings = Settings.from_env(
        {
            "RTRANK_SCORE_SHORTLIST": "off",
            "RTRANK_TRAINER_EXAMPLES_FROM": "latest",
            "RTRANK_LOG_LEVEL": "WARN",
            "RTRANK_DEVICE": "cuda:1",
        }
    )
    assert (settings.score_shortlist, settings.trainer_examples_from) == ("off", "latest")
    assert (settings.log_level, settings.device) == ("warn", "cuda:1")


@pytest.mark.parametrize("text", ["1", "true", "YES", " on "])
def test_a_true_boolean(text: str) -> None:
    assert Settings.from_env({"RTRANK_EXPLAIN": text}).explain is True


@pytest.mark.parametrize("text", ["0", "false", "No", "off", ""])
def test_a_false_boolean_or_an_empty_one(text: str) -> None:
    assert Settings.from_env({"RTRANK_ALLOW_REPEATS": text}).allow_repeats is False


def test_a_boolean_that_is_neither_names_its_variable() -> None:
    assert error_of(RTRANK_EXPLAIN="perhaps").startswith(
        "RTRANK_EXPLAIN='perhaps' is not a valid boolean"
    )


def test_a_path_is_read_as_a_path() -> None:
    settings = Settings.from_env({"RTRANK_DATA_DIR": "state/worker-1"})
    assert settings.data_dir == Path("state") / "worker-1"


def test_weights_are_read_as_a_mapping_of_names_to_numbers() -> None:
    settings = Settings.from_env({"RTRANK_CATEGORY_BOOSTS": "promo:0.2, meh:-0.5"})
    assert settings.category_boosts == {"promo": 0.2, "meh": -0.5}


def test_the_default_event_weights() -> None:
    weights = {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0}
    assert Settings().event_weights == weights


@pytest.mark.parametrize("text", ["view=1", "view:often", ":1", "view"])
def test_a_malformed_weight_names_its_variable_and_entry(text: str) -> None:
    message = error_of(RTRANK_EVENT_WEIGHTS=f"click:2,{text}")
    assert message.startswith(f"RTRANK_EVENT_WEIGHTS='click:2,{text}' ")
    assert f"entry {text!r} is not name:number" in message


def test_a_name_list_is_read_as_a_set() -> None:
    settings = Settings.from_env({"RTRANK_BLOCKED_ITEMS": "id1, id2,,id1"})
    assert settings.blocked_items == frozenset({"id1", "id2"})


def test_name_lists_are_empty_by_default() -> None:
    settings = Settings()
    assert settings.blocked_items == settings.repeat_event_types == frozenset()
    assert settings.sequence_event_types == frozenset()


def test_pinned_items_are_read_as_item_positions() -> None:
    settings = Settings.from_env({"RTRANK_PINNED_ITEMS": "a@0, b@3"})
    assert settings.pinned_items == {"a": 0, "b": 3}


@pytest.mark.parametrize("text", ["item-without-position", "a@-1", "a@first", "@3"])
def test_a_malformed_pinned_item_names_its_variable_and_entry(text: str) -> None:
    message = error_of(RTRANK_PINNED_ITEMS=text)
    assert message.startswith(f"RTRANK_PINNED_ITEMS={text!r} ")
    assert f"entry {text!r} is not item@position" in message


def test_malformed_rule_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_weights("view=1")
    with pytest.raises(ValueError):
        parse_pinned("item-without-position")
    assert parse_pinned("a@0, b@3") == {"a": 0, "b": 3}
    assert parse_names(" a ,b,") == frozenset({"a", "b"})


def test_keyword_construction_takes_a_structured_value_as_text_or_typed() -> None:
    as_text = Settings(event_weights="view:1,buy:5", pinned_items="x@2", blocked_items="a,b")
    typed = Settings(
        event_weights={"view": 1.0, "buy": 5.0}, pinned_items={"x": 2}, blocked_items={"a", "b"}
    )
    assert as_text == typed


def test_a_name_that_could_not_be_written_back_is_refused() -> None:
    with pytest.raises(ValidationError, match="comma"):
        Settings(blocked_items={"a,b"})


def test_keyword_construction_refuses_an_unknown_setting() -> None:
    with pytest.raises(ValidationError, match="top_kk"):
        Settings(top_kk=5)


def test_keyword_construction_ignores_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("RTRANK_TOP_K", "3")
    assert Settings().top_k == 10
    assert Settings.from_env().top_k == 3


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.top_k = 3


def test_replace_validates_its_changes() -> None:
    with pytest.raises(ValidationError, match="top_k"):
        Settings().replace(top_k=0)
    assert Settings().replace(pinned_items="a@1").pinned_items == {"a": 1}


def test_the_fields_set_are_those_read_from_the_environment_or_replaced() -> None:
    settings = Settings.from_env({"RTRANK_TOP_K": "5", "RTRANK_OTHER": "x"})
    assert settings.model_fields_set == {"top_k"}
    assert settings.replace(seed=1).model_fields_set == {"top_k", "seed"}


def test_an_isolated_run_renames_every_topic_and_the_app_id() -> None:
    base = Settings()
    run = base.isolated("demo-1", partitions=2)
    topics = [f for f in vars(base) if f.endswith("_topic")]
    assert len(topics) >= 9
    assert all(getattr(run, f) == f"demo-1.{getattr(base, f)}" for f in topics)
    assert run.app_id == "rtrank-demo-1"
    assert run.partitions == 2


def test_every_setting_has_a_description_and_a_default() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name
        assert not field.is_required(), name


def test_each_variable_is_the_prefix_and_the_field_in_upper_case() -> None:
    assert variable("batch_max_events") == "RTRANK_BATCH_MAX_EVENTS"


def every_field_changed() -> Settings:
    """Settings in which no field keeps its default, structured ones with several entries."""
    return Settings(
        broker="kafka://k1:9092;kafka://k2:9092",
        app_id="app",
        store="memory://",
        data_dir=Path("/var/lib/rtrank"),
        web_port=7000,
        web_bind="0.0.0.0",
        web_token="t0ken",
        web_token_file="/run/secrets/web-token",
        log_level="debug",
        events_topic="e",
        recommendations_topic="r",
        dlq_topic="d",
        training_topic="t",
        model_updates_topic="m",
        partitions=3,
        replication_factor=3,
        min_insync_replicas=2,
        standby_replicas=0,
        session_timeout_s=12.5,
        commit_interval_s=0.25,
        producer_delivery_timeout_s=45.0,
        producer_linger_ms=0.1,
        consumer_max_poll_records=77,
        stream_buffer_max=99,
        consumer_fetch_wait_ms=5,
        top_k=4,
        history_len=9,
        seen_len=11,
        allow_repeats=True,
        batch_max_events=13,
        batch_max_ms=1.25,
        batch_catch_up_ms=3.0,
        batch_keep_up_events=7,
        batch_behind_events=70,
        device="cuda:1",
        torch_threads=2,
        score_max_users=17,
        score_shortlist="on",
        item_index="ivf",
        item_index_lists=300,
        item_index_probe=12,
        encode_cache_mb=12.5,
        checkpoint="/models/a b.safetensors",
        seed=19,
        update_max_bytes=1000,
        snapshot_every=3,
        model_call_timeout_s=7.5,
        shutdown_timeout_s=12.0,
        update_catch_up_s=0.0,
        update_signing_key_file="/keys/update-signing.key",
        update_verify_key_file="/keys/update-signing.pub",
        update_assembly_max_bytes=4096,
        trainer_clip_grad_norm=0.5,
        trainer_archive_dir="/var/lib/rtrank/snapshots",
        trainer_archive_keep=3,
        trainer_lr=1e-4,
        trainer_surprise_floor=0.3,
        trainer_dense_lr=1e-7,
        trainer_batch_size=21,
        trainer_replay_ratio=0.1,
        trainer_recent_size=23,
        trainer_reservoir_size=29,
        trainer_rows_per_step=31,
        trainer_negatives=37,
        trainer_publish_s=0.2,
        trainer_examples_from="latest",
        trainer_threads=3,
        trainer_nice=0,
        trainer_metrics_port=7067,
        eval_window=41,
        items_topic="i",
        items_dlq_topic="idlq",
        rank_requests_topic="rq",
        rank_responses_topic="rs",
        rerank_candidates=43,
        mmr_lambda=0.7,
        max_per_category=2,
        category_boosts={"promo": 0.1, "meh": -2.5, "odd:name": 1e-9},
        blocked_items={"b1", "b 2"},
        pinned_items={"p1": 0, "p@2": 5},
        repeat_event_types={"view", "hover"},
        fresh_age_s=60.0,
        fresh_boost=0.15,
        explore_slots=0,
        trending_half_life_s=7.0,
        cold_start_max_history=0,
        event_weights={"view": 0.5, "purchase": 10.0},
        sequence_event_types={"click", "purchase"},
        explain=True,
        experiment_file=str(EXAMPLE_EXPERIMENT),
        max_id_bytes=47,
        max_event_bytes=53,
        max_clock_skew_s=2.5,
        state_ttl_s=86400.5,
        catalogue_max_items=59,
        trending_max_items=61,
        vocab_max_items=67,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="rtrank-worker",
        kafka_password="pw, with: odd=chars",
        kafka_password_file="/run/secrets/kafka password",
        kafka_ca_file="/etc/kafka/ca.pem",
        kafka_cert_file="/etc/kafka/client.pem",
        kafka_key_file="/etc/kafka/client.key",
    )


def test_the_round_trip_example_changes_every_field() -> None:
    changed, default = every_field_changed(), Settings()
    assert [n for n in Settings.model_fields if getattr(changed, n) == getattr(default, n)] == []


def test_every_value_read_back_from_its_variables_is_the_same() -> None:
    settings = every_field_changed()
    assert Settings.from_env(to_env(settings)) == settings


def test_the_defaults_read_back_from_their_variables_are_the_same() -> None:
    assert Settings.from_env(to_env(Settings())) == Settings()


def test_the_web_server_listens_on_loopback_unless_told_otherwise() -> None:
    assert Settings.from_env({}).web_bind == "127.0.0.1"
    assert Settings.from_env({"RTRANK_WEB_BIND": "0.0.0.0"}).web_bind == "0.0.0.0"
