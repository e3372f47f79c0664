"""``rtrank experiment report``: an experiment's outcome, read from the run's topics.

    RTRANK_EXPERIMENT_FILE=exp.json rtrank experiment report [--json] [--plot quality.png]

The run's topics and broker are the settings' (``RTRANK_EVENTS_TOPIC``,
``RTRANK_RECOMMENDATIONS_TOPIC``, …); the experiment is ``--experiment FILE`` or
``RTRANK_EXPERIMENT_FILE``. What the figures mean: `rtrank.streams.experiments.report`.
"""

from __future__ import annotations

import importlib.util
import json

import click

from rtrank.streams.cli.context import pass_settings
from rtrank.streams.experiments.definition import ExperimentError, load_experiment
from rtrank.streams.experiments.report import METRICS, build_report, read_experiment_run
from rtrank.streams.settings import Settings


@click.group("experiment")
def experiment() -> None:
    """A/B and interleaving experiments (RTRANK_EXPERIMENT_FILE)."""


@experiment.command("report")
@click.option(
    "--experiment",
    "path",
    type=click.Path(dir_okay=False),
    help="the experiment file (default: RTRANK_EXPERIMENT_FILE)",
)
@click.option("--alpha", type=float, default=0.05, show_default=True, help="significance level")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", type=click.Path(dir_okay=False), help="draw each variant over time here")
@pass_settings
def report_command(
    settings: Settings, path: str | None, alpha: float, as_json: bool, plot: str | None
) -> None:
    """Per variant: users, events judged, Hit@10, NDCG@10, MRR with 95% intervals, the
    difference to the control, the sample-ratio check; the win rate when interleaving."""
    if plot and importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--plot needs matplotlib: pip install 'rtrank[bench]'")
    try:
        exp = load_experiment(path or settings.experiment_file)
    except ExperimentError as e:
        raise click.ClickException(str(e)) from None
    if exp is None:
        raise click.UsageError("no experiment: give --experiment FILE or RTRANK_EXPERIMENT_FILE")
    try:
        report = build_report(read_experiment_run(settings, exp), exp, alpha)
    except RuntimeError as e:
        raise click.ClickException(str(e)) from None
    if plot:
        draw(report, plot)
    click.echo(json.dumps(report) if as_json else text(report))


def text(r: dict) -> str:
    """The report as a table, with a line on how to read it."""
    lines = [f"experiment {r['experiment']} ({r['mode']}); control: {r['control']}"]
    if r["mode"] == "ab":
        lines.append(
            f"{'variant':<14}{'users':>7}{'events':>8}{'versions':>10}"
            + "".join(f"{m + ' [95% CI]':>26}" for m in METRICS)
        )
        for v in r["variants"]:
            lines.append(
                f"{v['name']:<14}{v['users']:>7}{v['events']:>8}{_versions(v['versions']):>10}"
                + "".join(f"{_mean_ci(v[m]):>26}" for m in METRICS)
            )
        for v in r["variants"]:
            if "vs_control" in v:
                lines.append(
                    f"{v['name']} - {r['control']}: "
                    + ", ".join(f"{m} {_diff(v['vs_control'][m])}" for m in METRICS)
                )
        s = r["sample_ratio"]
        lines.append(
            f"sample ratio (users per variant vs shares): chi2 {_num(s['chi2'], '.2f')}, "
            f"df {s['df']}, p {_p(s['p'])}"
            + (
                "  MISMATCH: the assignment is not as declared; do not trust the differences"
                if s["flagged"]
                else "  ok"
            )
        )
    else:
        q = r["interleaved"]
        lines.append(
            f"interleaved lists: {q['users']} users, {q['events']} events judged, "
            f"{q['decided']} decided; " + ", ".join(f"{m} {_mean_ci(q[m])}" for m in METRICS)
        )
        lines.append(f"{'variant':<14}{'wins':>7}{'win share [95% CI]':>26}{'p (vs 0.5)':>12}")
        for v in r["variants"]:
            w = v["win_rate"]
            lines.append(f"{v['name']:<14}{v['wins']:>7}{_mean_ci(w):>26}{_p(w['p']):>12}")
    winner = r["winner"] or f"none (no difference with p < {r['alpha']})"
    lines.append(f"winner: {winner}")
    lines.append(
        f"{r['judged']} events judged in stream order, each against the newest list emitted "
        f"for its user's previous event ({r['untested']} without one"
        + (
            f", {r['skipped_trained']} against an older list: the newest was trained on them"
            if r["skipped_trained"]
            else ""
        )
        + "); 95% intervals and two-sided p-values: normal approximation, users as the unit "
        "(delta method)"
    )
    return "\n".join(lines)


def _versions(first_last: list[int]) -> str:
    if not first_last:
        return "-"
    first, last = first_last
    return str(first) if first == last else f"{first}-{last}"


def _num(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("<1e-6" if p < 1e-6 else f"{p:.4f}")


def _mean_ci(e: dict) -> str:
    lo, hi = e["ci"]
    return f"{_num(e['mean'], '.4f')} [{_num(lo, '.4f')}, {_num(hi, '.4f')}]"


def _diff(d: dict) -> str:
    lo, hi = d["ci"]
    return f"{_num(d['diff'], '+.4f')} [{_num(lo, '+.4f')}, {_num(hi, '+.4f')}] p {_p(d['p'])}"


def draw(r: dict, path: str) -> None:
    """Each variant's cumulative Hit@10 (``ab``) or win share (``interleave``) over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in r["over_time"].items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", label=name)
    what = "Hit@10 (cumulative)" if r["mode"] == "ab" else "share of decided events won"
    ax.set(xlabel="minutes since the first judged event", ylabel=what)
    ax.legend()
    ax.set_title(f"experiment {r['experiment']} ({r['mode']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
