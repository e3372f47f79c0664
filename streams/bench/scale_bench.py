"""``rtrank bench scale``: workers of one group through a keyed replay while they are killed.

    rtrank bench scale [--workers 1,2,3] [--standby 0,1] [--kills 2] [--trainer]
                       [--no-sizes] [--json]

Each run starts N ``rtrank worker`` processes of one group (standby replicas S) on fresh
topics of the local broker, then:

1. a burst of ``--burst`` events sent as fast as the replay can: events/s answered, from
   the first event sent to the last of them answered (every worker's answer counter);
2. the rest of the keyed synthetic replay at ``--rate`` events/s, with ``--kills`` workers
   SIGKILLed (round robin) and restarted at once, evenly spread: the event -> list latency
   p50/p99 of that phase (as `RecommendationReader` measures it: list received minus the
   event's ``ts``, kills included) and, per kill, the takeover pause (`takeover_pause_s`:
   kill to the first list on each of the victim's partitions). With one worker a kill is a
   restart, so its pause is the restart;
3. the correctness checks of `check_replay` over the whole run: every count must be 0,
   and the command exits 1 when one is not.

A run with S standby replicas needs N > S workers, so the default plan is (workers,
standby) = (1, 0), (2, 0), (2, 1), (3, 0), (3, 1). A killed worker's partitions move only
once the broker gives up on its session, so pauses follow ``--session-timeout-s``. A run
is `rtrank.streams.bench.scale_runs`; after the runs, `rtrank.streams.bench.scale_sizes`
measures bytes and CPU per event and per user for the capacity guide (``--no-sizes`` leaves
it out). Figures: docs/benchmarks.md, docs/capacity.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import click

from rtrank.deploy.kafka.broker import BrokerError
from rtrank.model.quality import machine_info
from rtrank.streams.bench import scale_sizes
from rtrank.streams.bench.demo import demo_model
from rtrank.streams.bench.local_stack import local_kafka_for
from rtrank.streams.bench.scale_runs import RunOptions, one_run, plan
from rtrank.streams.cli.context import pass_settings
from rtrank.streams.settings import Settings

DEFAULTS = RunOptions()


def say(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}", err=True)


def int_list(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of counts") from None


@click.command("scale")
@click.option(
    "--workers",
    default="1,2,3",
    show_default=True,
    callback=int_list,
    help="worker counts, one run each (and per standby count)",
)
@click.option(
    "--standby",
    default="0,1",
    show_default=True,
    callback=int_list,
    help="standby replica counts (a run needs more workers than standbys)",
)
@click.option(
    "--kills", type=int, default=DEFAULTS.kills, show_default=True, help="SIGKILLs per run"
)
@click.option(
    "--events", type=int, default=DEFAULTS.events, show_default=True, help="events per run"
)
@click.option(
    "--burst",
    type=int,
    default=DEFAULTS.burst,
    show_default=True,
    help="of which sent first, unpaced (events/s answered)",
)
@click.option(
    "--rate",
    type=float,
    default=DEFAULTS.rate,
    show_default=True,
    help="offered events/s of the rest (latency, takeover pauses)",
)
@click.option("--users", type=int, default=DEFAULTS.users, show_default=True)
@click.option(
    "--items",
    type=int,
    default=DEFAULTS.items,
    show_default=True,
    help="synthetic catalogue (the demo's model is trained on it once)",
)
@click.option(
    "--session-timeout-s",
    type=float,
    default=10.0,
    show_default=True,
    help="the workers' RTRANK_SESSION_TIMEOUT_S",
)
@click.option("--trainer", is_flag=True, help="run the online trainer beside the workers")
@click.option(
    "--sizes/--no-sizes",
    default=True,
    show_default=True,
    help="also measure bytes and CPU per event and per user (one worker)",
)
@click.option(
    "--sizes-users", type=int, default=500, show_default=True, help="users of the sizes part"
)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="model to serve over the synthetic items [default: the demo's]",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@pass_settings
def scale_command(
    base: Settings,
    workers: list[int],
    standby: list[int],
    session_timeout_s: float,
    sizes: bool,
    sizes_users: int,
    checkpoint: str | None,
    as_json: bool,
    **options: object,
) -> None:
    """Workers of one group killed and restarted during a replay: events/s, latency,
    takeover pauses and the correctness checks, per (workers, standby) run."""
    run_options = RunOptions(**options)
    if run_options.burst >= run_options.events:
        raise click.BadParameter("must leave events for the paced part", param_hint="--burst")
    tmp = Path(tempfile.mkdtemp(prefix="rtrank-scale-"))
    settings = base.replace(
        checkpoint=checkpoint or str(demo_model(run_options.items, 0)),
        session_timeout_s=session_timeout_s,
        log_level="warn",
    )
    result: dict = {"runs": [], "machine": machine_info()}
    try:
        with local_kafka_for(settings):
            runs = plan(workers, standby)
            for n, (w, s) in enumerate(runs, 1):
                say(f"run {n}/{len(runs)}: {w} worker(s), standby {s}")
                result["runs"].append(one_run(settings, tmp, w, s, run_options, say))
            if sizes:
                say(f"sizes: one worker, {sizes_users} users")
                result["sizes"] = scale_sizes.measure(
                    settings, tmp / "sizes", run_options.items, sizes_users, say
                )
    except (BrokerError, RuntimeError) as exc:
        raise click.ClickException(f"{exc} (files kept in {tmp})") from None
    click.echo(json.dumps(result) if as_json else table(result))
    if not all_correct(result):
        say(f"a correctness count is not 0: the workers' logs are kept in {tmp}")
        raise SystemExit(1)
    shutil.rmtree(tmp, ignore_errors=True)


def all_correct(result: dict) -> bool:
    """Every correctness count of every run (and of the sizes part) is 0."""
    checks = [r["checks"] for r in result["runs"]] + [result.get("sizes", {}).get("checks", {})]
    return not any(v for counts in checks for v in counts.values())


def table(result: dict) -> str:
    """The runs as a text table (when there are runs), then the sizes and the machine."""
    lines = []
    if result["runs"]:
        lines.append(
            f"{'workers':>7} {'standby':>7} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}  "
            f"{'takeover pauses s':<20} checks (unanswered uncovered seen misapplied drifted)"
        )
    for r in result["runs"]:
        pauses = ", ".join(f"{p:.1f}" for p in r["takeover_pause_s"]) or "-"
        lines.append(
            f"{r['workers']:>7} {r['standby']:>7} {r['answered_eps']:>9,.0f} "
            f"{r['latency_ms']['p50']:>8.1f} {r['latency_ms']['p99']:>8.1f}  {pauses:<20} "
            + " ".join(str(v) for v in r["checks"].values())
        )
    if "sizes" in result:
        lines += ([""] if lines else []) + [scale_sizes.table(result["sizes"])]
    m = result["machine"]
    lines.append(f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}")
    return "\n".join(lines)
