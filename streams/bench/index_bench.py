"""``rtrank bench index``: the exact scan, its bfloat16 shortlist (where the machine runs
bfloat16 natively) and the approximate IVF index (`rtrank.model.item_ann`,
``RTRANK_ITEM_INDEX=ivf``) over synthetic catalogues of each size, in one run: top-K
users/s, memory, build time and recall@10 against the exact top-10
(`rtrank.model.index_bench`).

With ``--checkpoint`` and ``--data``, a trained model's item rows and the vectors it
encodes for the data set's users instead, seen items excluded as served.

    rtrank bench index
    rtrank bench index --items 23715,1000000 --rows topics,random --probe 64
    rtrank bench index --checkpoint games.safetensors --data amazon_games.txt --users 2048
"""

from __future__ import annotations

import json
from dataclasses import asdict

import click
import faiss
import torch

from rtrank.model.checkpoint import CheckpointError, load_checkpoint
from rtrank.model.data import DataError, read_sequences
from rtrank.model.index_bench import (
    UPDATE_ROWS,
    data_users,
    measure,
    model_with_rows,
    random_rows,
    topic_rows,
    topic_users,
)
from rtrank.model.item_ann import IvfConfig
from rtrank.model.quality import machine_info

ROWS = ("topics", "random")


@click.command("index")
@click.option("--items", default="23715,1000000", show_default=True, help="catalogue sizes")
@click.option(
    "--rows",
    default="topics",
    show_default=True,
    help="item rows: topics (structured like trained rows), random (worst case), or both",
)
@click.option("--users", type=int, default=1024, show_default=True, help="users measured")
@click.option("--batch", type=int, default=256, show_default=True, help="users per call")
@click.option("--dim", type=int, default=128, show_default=True, help="embedding size")
@click.option("--lists", type=int, default=0, show_default=True, help="IVF cells (0 = auto)")
@click.option(
    "--probe", type=int, default=IvfConfig().probe, show_default=True, help="IVF cells per user"
)
@click.option("--threads", type=int, default=1, show_default=True, help="CPU threads")
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    help="a trained model's item rows instead of synthetic ones (needs --data)",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False),
    help="the data set whose users the checkpoint encodes (their last max_len items)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def index_command(
    items: str,
    rows: str,
    users: int,
    batch: int,
    dim: int,
    lists: int,
    probe: int,
    threads: int,
    checkpoint: str | None,
    data: str | None,
    as_json: bool,
) -> None:
    """Exact scan and IVF index side by side: users/s, memory, build time, recall@10."""
    if (checkpoint is None) != (data is None):
        raise click.UsageError("--checkpoint and --data go together")
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    config = IvfConfig(lists=lists, probe=probe)
    if checkpoint is not None:
        results, dim, users = _trained(checkpoint, data, users, config, batch)
    else:
        results = _synthetic(items, rows, users, dim, config, batch)
    result = {
        "results": results,
        "users": users,
        "batch": batch,
        "dim": dim,
        "threads": threads,
        "machine": machine_info(),
    }
    click.echo(json.dumps(result) if as_json else _table(result))


def _trained(
    checkpoint: str, data: str, users: int, config: IvfConfig, batch: int
) -> tuple[list[dict], int, int]:
    """Rows of the checkpoint's model over ``data``'s users, its embedding size and the
    users measured (fewer than ``users`` when the data set has fewer)."""
    try:
        loaded = load_checkpoint(checkpoint)
        sequences = read_sequences(data)
    except (CheckpointError, DataError) as e:
        raise click.ClickException(str(e)) from e
    model = loaded.model
    vectors, seen = data_users(model, loaded.vocab, sequences, users)
    size = model.config.num_items - 1
    results = [
        {"items": size, "rows": "model", **asdict(figures)}
        for figures in measure(model, vectors, config, batch, exclude=seen)
    ]
    return results, model.config.dim, len(seen)


def _synthetic(
    items: str, rows: str, users: int, dim: int, config: IvfConfig, batch: int
) -> list[dict]:
    """Rows of each synthetic catalogue size and kind of rows."""
    kinds = [r.strip() for r in rows.split(",") if r.strip()]
    if not kinds or set(kinds) - set(ROWS):
        raise click.BadParameter(f"use {', '.join(ROWS)} or both", param_hint="--rows")
    sizes = [int(n) for n in items.split(",") if n.strip()]
    results = []
    for size in sizes:
        table, centres = topic_rows(size, dim)
        people = topic_users(centres, users)
        for kind in kinds:
            model = model_with_rows(table if kind == "topics" else random_rows(size, dim))
            for figures in measure(model, people, config, batch):
                results.append({"items": size, "rows": kind, **asdict(figures)})
            del model
    return results


def _table(r: dict) -> str:
    m = r["machine"]
    trained = any(x["rows"] == "model" for x in r["results"])
    seen = ", each user's seen items excluded" if trained else ""
    lines = ["    items  rows    index        build s   users/s  memory MB  recall@10  update ms"]
    for x in r["results"]:
        lines.append(
            f"{x['items']:>9,}  {x['rows']:<6}  {x['index']:<11}  {x['build_s']:>7.2f}  "
            f"{x['users_per_s']:>8,.0f}  {x['index_mb']:>9.0f}  {x['recall_at_10']:>9.3f}  "
            f"{x['update_ms']:>9.1f}"
        )
    lines.append(
        f"{r['users']} users, {r['batch']} per call, dim {r['dim']}, {r['threads']} threads; "
        f"users/s = top-10 only (encoding is the same for all){seen}; memory = the exact scan's "
        f"table copy (shortlist: and its bfloat16 copy) or the index; update = following "
        f"{UPDATE_ROWS:,} moved rows (exact, shortlist: new copies); machine: {m['cpu']}, "
        f"{m['cores']} cores, torch {m['torch']}, "
        f"faiss {faiss.__version__}"
    )
    return "\n".join(lines)
