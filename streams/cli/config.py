"""``rtrank config``: the effective settings, and the configuration reference built from them.

    rtrank config                                    # variable, value, env or default
    rtrank config --json                             # the same, for scripts
    rtrank config --markdown > docs/configuration.md # regenerate the reference

Values are shown in their variables' syntax; a `pydantic.SecretStr` setting is masked in
both forms. The reference is generated from the settings' own descriptions, defaults and
constraints (tests/unit/streams/cli/test_config.py fails when the committed file differs).
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Literal

import click
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from rtrank.streams.cli.context import pass_settings
from rtrank.streams.setting_types import env_text
from rtrank.streams.settings import Settings, variable

MASK = "**********"
REFERENCE = Path("docs/configuration.md")
REGENERATE = f"rtrank config --markdown > {REFERENCE}"

# Headings of the reference, each before the field it names (fields keep their class order).
SECTIONS = {
    "broker": "Connection and the worker",
    "events_topic": "Topics and Kafka clients",
    "top_k": "Lists and micro-batches",
    "device": "Model serving",
    "update_max_bytes": "Model updates and the online trainer",
    "items_topic": "Re-ranking, cold start and rank requests",
    "max_id_bytes": "Limits on events",
    "kafka_security_protocol": "Kafka security",
}


def shown(value: object) -> str:
    """``value`` as its variable would hold it, a secret masked (empty stays empty)."""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    return env_text(value)


def source(settings: Settings, name: str) -> str:
    """``env`` for a field read from its variable (`Settings.model_fields_set`), else
    ``default``."""
    return "env" if name in settings.model_fields_set else "default"


def rows(settings: Settings) -> list[tuple[str, str, str]]:
    """(variable, shown value, source) for every setting, in the class's order."""
    return [
        (variable(name), shown(getattr(settings, name)), source(settings, name))
        for name in type(settings).model_fields
    ]


def json_view(settings: Settings) -> dict[str, dict[str, Any]]:
    """``{variable: {"value": typed JSON value, "source": ...}}``; secrets masked."""
    return {
        variable(name): {
            "value": _json_value(getattr(settings, name)),
            "source": source(settings, name),
        }
        for name in type(settings).model_fields
    }


def _json_value(value: object) -> object:
    if isinstance(value, SecretStr):
        return shown(value)
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    return value


def reference_markdown(settings_cls: type[Settings] = Settings) -> str:
    """docs/configuration.md: one table per section of `SECTIONS`, a row per setting."""
    fields = settings_cls.model_fields
    missing = [name for name in SECTIONS if name not in fields]
    if missing:
        raise ValueError(f"SECTIONS names fields that do not exist: {missing}")
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings' own descriptions (streams/settings.py) by",
        f"`{REGENERATE}`: edit those, not this file;",
        "a unit test fails when the two differ. -->",
        "",
        "Every setting is read from its environment variable once, when an `rtrank` command",
        "starts; a malformed value stops the command with one line naming the variable.",
        "`rtrank config` prints the effective values and whether each came from the environment",
        "or the default (`--json` for scripts).",
        "",
        "Lists are comma-separated, and spaces around entries are ignored: `name:number`",
        "entries (weights, boosts), names, or `item@position` entries (0-based). Booleans",
        "take `true`/`false`, `yes`/`no`, `on`/`off` or `1`/`0`; empty means false.",
    ]
    for name, field in fields.items():
        if name in SECTIONS:
            lines += ["", f"## {SECTIONS[name]}", ""]
            lines += ["| Variable | Default | Type | Meaning |", "|---|---|---|---|"]
        default = shown(field.get_default(call_default_factory=True))
        cells = [f"`{variable(name)}`", f"`{default}`" if default else "*(empty)*"]
        cells += [kind(field), field.description or ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def kind(field: FieldInfo) -> str:
    """What a setting's variable holds, with its bounds: ``integer > 0``, ``number 0 … 1``."""
    annotation = field.annotation
    if typing.get_origin(annotation) is Literal:
        return " / ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    if annotation == dict[str, float]:
        return "`name:number,…`"
    if annotation == dict[str, int]:
        return "`item@position,…`"
    if annotation == frozenset[str]:
        return "`name,…`"
    names = {bool: "boolean", int: "integer", float: "number", Path: "path", str: "text"}
    name = names.get(annotation, getattr(annotation, "__name__", str(annotation)))
    return " ".join([name, *_bounds(field)])


def _bounds(field: FieldInfo) -> list[str]:
    """The field's bounds (pydantic keeps ``Field(gt=…)`` as annotated-types metadata)."""
    bounds = {}
    for m in field.metadata:
        for attr in ("gt", "ge", "lt", "le"):
            if getattr(m, attr, None) is not None:
                bounds[attr] = getattr(m, attr)
    if "ge" in bounds and "le" in bounds:
        return [f"{bounds['ge']} … {bounds['le']}"]
    ops = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    return [f"{ops[attr]} {value}" for attr, value in bounds.items()]


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="one JSON object: variable -> value, source")
@click.option("--markdown", is_flag=True, help=f"the configuration reference ({REFERENCE})")
@pass_settings
def config(settings: Settings, as_json: bool, markdown: bool) -> None:
    """Print the effective settings: each variable, its value, and env or default."""
    if markdown:
        click.echo(reference_markdown(), nl=False)
    elif as_json:
        click.echo(json.dumps(json_view(settings), indent=2))
    else:
        table = rows(settings)
        width = max(len(v) for v, _, _ in table)
        value_width = min(max(len(t) for _, t, _ in table), 48)
        for name, text, origin in table:
            click.echo(f"{name:<{width}}  {text:<{value_width}}  {origin}")
