"""The ``rtrank`` command: rtrank's commands, with Faust's worker as ``rtrank worker``.

    rtrank worker -l info        # the stream processor (web port: /health, /metrics)
    rtrank demo                  # the whole pipeline on a local broker
    rtrank --help                # every command, by group

The settings are read from the environment here, once; a bad value (or a token file that
cannot be read) ends the command with one line naming the variable (exit code 2). The app
is built from them and carried on the root click context, where Faust's commands look for
it and rtrank's commands take its settings (`rtrank.streams.cli.context.pass_settings`).

The root group subclasses Faust's own (`rtrank.streams.worker.faust_patches.FaustRootGroup`:
its ``make_context`` puts the app on the root context) with Faust's root options and callback,
so ``rtrank worker`` is Faust's worker command, options and all. Faust's other
commands (``agents``, ``tables``, ``send``, ``reset``, ``models``, …) mean Faust's notions,
not rtrank's, and live under ``rtrank faust``.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import version
from typing import Any

import click
import faust

from rtrank.streams.kafka_security import KafkaConnectError, KafkaSecurityError, check_connection
from rtrank.streams.settings import Settings, SettingsError
from rtrank.streams.trainer.update_signing import UpdateKeys
from rtrank.streams.worker.app import build_app
from rtrank.streams.worker.faust_patches import FaustRootGroup

# rtrank's commands, each imported only when it is run or listed (`RtrankGroup`): the
# worker's process then loads neither torch nor the benchmarks (docs/capacity.md).
COMMANDS = {
    "kafka": "rtrank.streams.cli.kafka:kafka",
    "produce": "rtrank.streams.cli.produce:produce",
    "tail": "rtrank.streams.cli.tail:tail",
    "forget": "rtrank.streams.cli.forget:forget",
    "demo": "rtrank.streams.bench.demo:demo",
    "train": "rtrank.streams.cli.training:train_command",
    "eval": "rtrank.streams.cli.training:eval_command",
    "bench": "rtrank.streams.bench.pipeline_bench:bench",
    "experiment": "rtrank.streams.cli.experiment:experiment",
    "trainer": "rtrank.streams.cli.trainer:trainer_command",
    "config": "rtrank.streams.cli.config:config",
    "rollback": "rtrank.streams.cli.rollback:rollback",
    "keys": "rtrank.streams.cli.keys:keys",
}

HELP = """rtrank: real-time sequential recommendations from a Kafka stream.

Producers write behaviour events (user, item, type, time) to the events topic. `rtrank
worker` keeps each user's recent items in a RocksDB table, scores the catalogue with a
sequence model and writes a re-ranked list per event to the recommendations topic, while
`rtrank trainer` keeps learning from the same stream and publishes model updates that the
workers swap in between batches. Settings come from RTRANK_* environment variables
(`rtrank config` shows them).

Start with `rtrank demo` (the whole pipeline on a local broker, one command); run the
stream processor with `rtrank worker -l info`.
"""

SECTIONS = (
    ("Run", ("worker", "trainer", "demo")),
    ("Data", ("produce", "tail", "forget")),
    ("Model", ("train", "eval", "rollback")),
    ("Operate", ("kafka", "config", "keys", "faust")),
    ("Measure", ("bench", "experiment")),
)


class RtrankGroup(FaustRootGroup):
    """Faust's root group with the commands listed in `SECTIONS` (any other one last), and
    the ``lazy`` ones (name -> ``"module:attribute"``) imported when first asked for."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.lazy:
            module, attribute = self.lazy[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {}
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                listed[name] = command
        if not listed:
            return
        limit = formatter.width - 6 - max(map(len, listed))
        grouped = [(title, [n for n in names if n in listed]) for title, names in SECTIONS]
        placed = {n for _, names in grouped for n in names}
        grouped.append(("Other", [n for n in listed if n not in placed]))
        for title, names in grouped:
            if names:
                with formatter.section(f"{title} commands"):
                    formatter.write_dl([(n, listed[n].get_short_help_str(limit)) for n in names])


def build_cli(settings: Settings) -> RtrankGroup:
    """The ``rtrank`` group: Faust's root options and worker, rtrank's commands, and Faust's
    other commands under ``rtrank faust``."""
    from faust.cli.faust import cli as faust_cli  # importing it registers Faust's commands

    group = RtrankGroup(
        name="rtrank",
        help=HELP,
        callback=faust_cli.callback,
        params=[_rtrank_param(p) for p in faust_cli.params],
        lazy=COMMANDS,
    )
    group.add_command(worker_command(faust_cli.commands["worker"], settings))
    group.add_command(
        click.Group(
            "faust",
            help="Faust's own commands on rtrank's app (agents, tables, send, reset, …).",
            commands={n: c for n, c in faust_cli.commands.items() if n != "worker"},
        )
    )
    return group


def worker_command(faust_worker: click.Command, settings: Settings) -> click.Command:
    """Faust's worker command, described as rtrank's stream processor in the command list,
    that first connects to Kafka once (`check_connection`). Faust's clients retry a refused
    login or an untrusted certificate without end, so the worker would hang instead of
    saying why: such a refusal ends it with one line (exit 1). A broker not reachable
    (perhaps not up yet) is waited for as before, with one warning line."""
    worker = copy.copy(faust_worker)
    worker.short_help = "The stream processor: events in, lists out (/health, /metrics)."
    start = faust_worker.callback

    def connected_then_start(*args: Any, **kwargs: Any) -> Any:
        try:
            check_connection(settings)
        except KafkaSecurityError as exc:
            raise click.ClickException(str(exc)) from None
        except KafkaConnectError as exc:
            if exc.refused:
                raise click.ClickException(str(exc)) from None
            click.echo(f"Warning: {exc}; waiting for it", err=True)
        return start(*args, **kwargs)

    worker.callback = functools.wraps(start)(connected_then_start)
    return worker


def _rtrank_param(param: click.Parameter) -> click.Parameter:
    """Faust's root option as rtrank shows it: ``--version`` names rtrank, ``--app`` (there
    is one app) is hidden; the others as they are."""
    if param.name == "version":
        return click.Option(
            ["--version"],
            is_flag=True,
            expose_value=False,
            is_eager=True,
            callback=_show_version,
            help="Show the version and exit.",
        )
    if param.name == "app":
        hidden = copy.copy(param)
        hidden.hidden = True
        return hidden
    return param


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"rtrank {version('rtrank')} (Faust {faust.__version__})")
        ctx.exit()


def main() -> None:
    """Console entry point: ``rtrank …``."""
    try:
        settings = Settings.from_env()
        UpdateKeys.from_settings(settings)  # an unreadable key file stops any command here
        app = build_app(settings)
    except SettingsError as exc:
        click.echo(f"Error: {exc}", err=True)
        raise SystemExit(2) from None
    build_cli(settings)(app=app)
