"""`rtrank config` shows the effective settings (secrets masked), and the configuration
reference is generated from the settings' own descriptions."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from pydantic import Field, SecretStr

from rtrank.streams.cli.config import (
    MASK,
    REFERENCE,
    REGENERATE,
    config,
    json_view,
    reference_markdown,
    rows,
    shown,
)
from rtrank.streams.settings import Settings, to_env

ROOT = Path(__file__).resolve().parents[4]


class WithSecret(Settings):
    """Settings with a secret, as a SASL password setting would be."""

    sasl_password: SecretStr = Field(SecretStr(""), description="Password of the SASL user.")


def run(settings: Settings, *args: str) -> str:
    result = CliRunner().invoke(config, list(args), obj=settings)
    assert result.exit_code == 0, result.output
    return result.output


def test_each_setting_is_shown_with_its_value_and_where_it_came_from() -> None:
    settings = Settings.from_env({"RTRANK_TOP_K": "5", "RTRANK_PINNED_ITEMS": "a@0, b@3"})
    lines = {line.split()[0]: line.split()[1:] for line in run(settings).splitlines()}
    assert len(lines) == len(Settings.model_fields)
    assert lines["RTRANK_TOP_K"] == ["5", "env"]
    assert lines["RTRANK_PINNED_ITEMS"] == ["a@0,b@3", "env"]
    assert lines["RTRANK_BROKER"] == ["kafka://localhost:9092", "default"]


def test_json_gives_each_variable_its_typed_value_and_source() -> None:
    settings = Settings.from_env({"RTRANK_BLOCKED_ITEMS": "b,a", "RTRANK_EXPLAIN": "yes"})
    shown_json = json.loads(run(settings, "--json"))
    assert shown_json["RTRANK_BLOCKED_ITEMS"] == {"value": ["a", "b"], "source": "env"}
    assert shown_json["RTRANK_EXPLAIN"] == {"value": True, "source": "env"}
    assert shown_json["RTRANK_EVENT_WEIGHTS"]["value"] == Settings().event_weights
    assert shown_json["RTRANK_DATA_DIR"] == {"value": "rtrank-data", "source": "default"}


def test_a_secret_value_is_masked() -> None:
    assert shown(SecretStr("hunter2")) == MASK
    assert shown(SecretStr("")) == ""


def test_a_secret_setting_is_masked_in_the_table_and_in_json() -> None:
    settings = WithSecret(sasl_password="hunter2")
    assert ("RTRANK_SASL_PASSWORD", MASK, "env") in rows(settings)
    assert json_view(settings)["RTRANK_SASL_PASSWORD"]["value"] == MASK
    assert "hunter2" not in json.dumps(json_view(settings))


def test_a_child_process_still_gets_the_secret_in_clear() -> None:
    assert to_env(WithSecret(sasl_password="hunter2"))["RTRANK_SASL_PASSWORD"] == "hunter2"


def test_markdown_prints_the_reference() -> None:
    assert run(Settings(), "--markdown") == reference_markdown()


def test_the_reference_has_a_row_per_setting_with_its_default_type_and_meaning() -> None:
    text = reference_markdown()
    assert "| `RTRANK_TOP_K` | `10` | integer > 0 | K items per recommendation list. |" in text
    assert "| `RTRANK_MMR_LAMBDA` | `1.0` | number 0 … 1 |" in text
    assert "| `RTRANK_SCORE_SHORTLIST` | `auto` | `auto` / `on` / `off` |" in text
    assert "| `RTRANK_EVENT_WEIGHTS` | `view:1,click:2,add_to_cart:4,purchase:8` |" in text
    assert "| `RTRANK_BLOCKED_ITEMS` | *(empty)* | `name,…` |" in text


def test_the_reference_documents_every_setting() -> None:
    text = reference_markdown()
    missing = [name for name, _, _ in rows(Settings()) if f"| `{name}` |" not in text]
    assert not missing


def test_the_committed_reference_is_the_generated_one() -> None:
    committed = (ROOT / REFERENCE).read_text() if (ROOT / REFERENCE).exists() else ""
    assert committed == reference_markdown(), (
        f"{REFERENCE} is out of date with streams/settings.py; regenerate it: {REGENERATE}"
    )
