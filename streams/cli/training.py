"""``rtrank train``, ``rtrank eval`` and ``rtrank bench quality``: offline model commands.

Thin wrappers over ``model/`` (training in `rtrank.model.train`, metrics in
`rtrank.model.evaluate`, the benchmark in `rtrank.model.quality`): parse options, call, print.
Bad input ends in a one-line error, not a traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator

import click

from rtrank.model.checkpoint import CheckpointError, load_checkpoint
from rtrank.model.data import FORMATS, DataError
from rtrank.model.evaluate import PROTOCOLS, evaluate, make_eval_set, model_scorer
from rtrank.model.quality import plot_history, run_quality
from rtrank.model.sasrec import LOSSES, SASRecConfig
from rtrank.model.serving import resolve_device
from rtrank.model.train import TrainConfig, load_dataset, train

_TRAIN = TrainConfig()
_MODEL = SASRecConfig(num_items=2)

data_path = click.argument("path", type=click.Path(exists=True, dir_okay=False))
format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="data file format",
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N"
)


def _training_options(fn):
    """Options shared by ``train`` and ``bench quality`` (defaults reach the paper's figures)."""
    opts = [
        click.option("--epochs", type=int, default=_TRAIN.epochs, show_default=True),
        click.option(
            "--max-minutes",
            type=float,
            default=_TRAIN.max_minutes,
            show_default=True,
            help="wall-time budget for training",
        ),
        click.option("--seed", type=int, default=_TRAIN.seed, show_default=True),
        click.option("--batch-size", type=int, default=_TRAIN.batch_size, show_default=True),
        click.option("--lr", type=float, default=_TRAIN.lr, show_default=True),
        click.option(
            "--patience",
            type=int,
            default=_TRAIN.patience,
            show_default=True,
            help="epochs without validation gain before stopping",
        ),
        click.option(
            "--item-noise",
            type=float,
            default=_TRAIN.item_noise,
            show_default=True,
            help="share of input items replaced by random ones (regulariser)",
        ),
        click.option(
            "--ema-decay",
            type=float,
            default=_TRAIN.ema_decay,
            show_default=True,
            help="keep a moving average of the weights (0 = off)",
        ),
        click.option(
            "--refit-epochs",
            type=int,
            default=_TRAIN.refit_epochs,
            show_default=True,
            help="after the best epoch: epochs on training + validation items (0 = none)",
        ),
        click.option("--refit-lr", type=float, default=_TRAIN.refit_lr, show_default=True),
        click.option("--dim", type=int, default=_MODEL.dim, show_default=True),
        click.option("--blocks", type=int, default=_MODEL.num_blocks, show_default=True),
        click.option("--max-len", type=int, default=_MODEL.max_len, show_default=True),
        click.option("--dropout", type=float, default=_MODEL.dropout, show_default=True),
        click.option("--loss", type=click.Choice(LOSSES), default=_MODEL.loss, show_default=True),
        click.option(
            "--negatives",
            type=int,
            default=_MODEL.num_negatives,
            show_default=True,
            help="negatives per batch for --loss sampled",
        ),
        click.option("--threads", type=int, default=None, help="torch CPU threads"),
        device_option,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _configs(num_items: int, o: dict) -> tuple[SASRecConfig, TrainConfig]:
    model_cfg = SASRecConfig(
        num_items=num_items,
        max_len=o["max_len"],
        dim=o["dim"],
        num_blocks=o["blocks"],
        dropout=o["dropout"],
        loss=o["loss"],
        num_negatives=o["negatives"],
    )
    train_cfg = TrainConfig(
        epochs=o["epochs"],
        batch_size=o["batch_size"],
        lr=o["lr"],
        seed=o["seed"],
        device=o["device"],
        max_minutes=o["max_minutes"],
        patience=o["patience"],
        threads=o["threads"],
        item_noise=o["item_noise"],
        ema_decay=o["ema_decay"],
        refit_epochs=o["refit_epochs"],
        refit_lr=o["refit_lr"],
    )
    return model_cfg, train_cfg


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turns the errors bad input causes into a one-line ``click.ClickException``."""
    try:
        yield
    except (DataError, CheckpointError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None


def _log_to_stderr() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")


@click.command("train")
@data_path
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="checkpoint to write")
@format_option
@_training_options
def train_command(path: str, out: str, fmt: str, **options) -> None:
    """Train the sequence model on PATH; the best epoch is written to --out."""
    _log_to_stderr()
    with _one_line_errors():
        resolve_device(options["device"])
        data = load_dataset(path, fmt)
        model_cfg, train_cfg = _configs(len(data.vocab), options)
        result = train(data, model_cfg, train_cfg, out=out)
    if result.best_valid is None:
        raise click.ClickException("training stopped before the first validation; nothing saved")
    v = result.best_valid
    click.echo(
        f"best epoch {result.best_epoch}: valid {train_cfg.eval_protocol} hit@10 {v.hit:.4f} "
        f"ndcg@10 {v.ndcg:.4f} mrr {v.mrr:.4f}"
        + (f", then {len(result.refit)} refit epochs" if result.refit else "")
        + f"; {result.seconds:.0f}s on {result.device}; saved {out}"
    )


@click.command("eval")
@data_path
@click.option("--checkpoint", required=True, type=click.Path(exists=True, dir_okay=False))
@format_option
@click.option("--protocol", type=click.Choice(PROTOCOLS), default="sampled100", show_default=True)
@click.option("--stage", type=click.Choice(["test", "valid"]), default="test", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="negative sampling seed")
@device_option
def eval_command(
    path: str, checkpoint: str, fmt: str, protocol: str, stage: str, seed: int, device: str
) -> None:
    """Evaluate a checkpoint on PATH (leave-one-out; items it does not know are dropped)."""
    with _one_line_errors():
        ckpt = load_checkpoint(checkpoint, resolve_device(device))
        data = load_dataset(path, fmt, vocab=ckpt.vocab)
        eval_set = make_eval_set(data.split, stage, protocol, len(ckpt.vocab), seed)
        if not eval_set.histories:
            raise click.ClickException(f"{path}: no user has the 3 known items evaluation needs")
        m = evaluate(model_scorer(ckpt.model), eval_set)
    if ckpt.meta.get("data_fingerprint") != data.fingerprint:
        click.echo("note: this data is not the file the checkpoint was trained on", err=True)
    click.echo(
        f"{stage} {protocol}: hit@10 {m.hit:.4f} ndcg@10 {m.ndcg:.4f} mrr {m.mrr:.4f} "
        f"({m.users} users, model version {ckpt.version})"
    )


@click.command("quality")
@data_path
@format_option
@click.option("--json", "as_json", is_flag=True, help="print one JSON object instead of a table")
@click.option("--plot", type=click.Path(dir_okay=False), help="write the training curve PNG here")
@click.option(
    "--out", type=click.Path(dir_okay=False), help="also save the trained model (a checkpoint) here"
)
@_training_options
def quality_command(
    path: str, fmt: str, as_json: bool, plot: str | None, out: str | None, **options
) -> None:
    """Train the model and the popularity/transition baselines on PATH; compare them."""
    if not as_json:
        _log_to_stderr()
    if plot and importlib.util.find_spec("matplotlib") is None:
        raise click.UsageError("--plot needs matplotlib: pip install 'rtrank[bench]'")
    with _one_line_errors():
        resolve_device(options["device"])
        data = load_dataset(path, fmt)
        model_cfg, train_cfg = _configs(len(data.vocab), options)
        report = run_quality(data, model_cfg, train_cfg, out=out)
        if plot:
            plot_history(report.history, plot, title=f"rtrank on {data.name}")
    if as_json:
        click.echo(report.to_json())
    else:
        click.echo(report.table())
