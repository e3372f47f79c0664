"""``rtrank bench encode``: the served model's encode cost per event with a warm encode cache
beside a cold one, in one run; with ``--data``, the same over a replay's mix of history
lengths, and what the cache's window restarts cost in Hit@10 (`rtrank.model.encode_bench`).

    rtrank bench encode
    rtrank bench encode --checkpoint games.safetensors --data ../shared/data/amazon_games.txt
"""

from __future__ import annotations

import json

import click
import torch

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.data import read_sequences
from rtrank.model.encode_bench import encode_costs, replay_costs, replay_slides
from rtrank.model.quality import machine_info
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import resolve_device
from rtrank.model.synthetic import item_id
from rtrank.model.vocab import Vocabulary

GAMES_ITEMS = 23_715  # the shared Amazon Games catalogue


@click.command("encode")
@click.option(
    "--checkpoint",
    default="",
    help="model to measure (default: random weights over --data's items, or --items)",
)
@click.option("--items", type=int, default=GAMES_ITEMS, show_default=True)
@click.option("--users", type=int, default=256, show_default=True, help="users per model call")
@click.option(
    "--lengths",
    default="5,20,45",
    show_default=True,
    help="history lengths before the measured events (comma-separated)",
)
@click.option("--events", "appends", type=int, default=4, show_default=True, help="events per user")
@click.option("--data", type=click.Path(exists=True, dir_okay=False), help="replay for Hit@10")
@click.option("--device", default="cpu", show_default=True)
@click.option("--threads", type=int, default=1, show_default=True, help="torch CPU threads")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def encode_command(
    checkpoint: str,
    items: int,
    users: int,
    lengths: str,
    appends: int,
    data: str | None,
    device: str,
    threads: int,
    as_json: bool,
) -> None:
    """Encode cost per event, warm cache beside cold; with --data, the same over the
    replay's mix of history lengths, and Hit@10 cached vs full past the window."""
    torch.set_num_threads(threads)
    target = resolve_device(device)
    sequences = read_sequences(data) if data else None
    if checkpoint:
        ckpt = load_checkpoint(checkpoint, target)
        model, vocab = ckpt.model, ckpt.vocab
    else:  # random weights: over the replay's items when there is one
        torch.manual_seed(0)
        ids = sorted({i for s in sequences.values() for i in s}) if sequences else None
        vocab = Vocabulary(ids or (item_id(n) for n in range(items)))
        model = SASRec(SASRecConfig(num_items=len(vocab))).to(target).eval()
    if model.config.positions != "from_start":
        raise click.ClickException(f"{checkpoint}: positions counted from the end: no cache")
    costs = [
        encode_costs(model, vocab, int(n), users, appends) for n in lengths.split(",") if n.strip()
    ]
    result = {
        "costs": costs,
        "mix": replay_costs(model, vocab, sequences, per_call=users) if sequences else None,
        "replay": replay_slides(model, vocab, sequences) if sequences else None,
        "items": len(vocab) - 1,
        "device": str(target),
        "threads": threads,
        "machine": machine_info(),
    }
    click.echo(json.dumps(result) if as_json else _table(result))


def _table(r: dict) -> str:
    m = r["machine"]
    lines = [
        "history  warm us/event  cold us/event  cold/warm  miss us/user  "
        "top-10 us/list  list cold/warm  max |warm-cold|",
    ]
    for c in r["costs"]:
        lists = (c["cold_us"] + c["top_k_us"]) / (c["warm_us"] + c["top_k_us"])
        lines.append(
            f"{c['length']:>4}+1   {c['warm_us']:>13.1f}  {c['cold_us']:>13.1f}  "
            f"{c['cold_us'] / c['warm_us']:>8.1f}x  {c['miss_us']:>12.1f}  "
            f"{c['top_k_us']:>14.1f}  {lists:>13.1f}x  {c['max_abs_diff']:>15.1e}"
        )
    if r["mix"]:
        x = r["mix"]
        lines.append(
            f"replay mix: {x['events']:,} events of {x['users']:,} users, "
            f"{x['mean_window']:.1f} items encoded cold per event on average: "
            f"warm {x['warm_us']:.1f} us/event, cold {x['cold_us']:.1f} us/event, "
            f"cold/warm {x['cold_us'] / x['warm_us']:.1f}x "
            f"({x['cache_hits']:,} hits, {x['cache_misses']:,} misses, "
            f"{x['cache_restarts']:,} restarts)"
        )
    if r["replay"]:
        p = r["replay"]
        lines += [
            f"replay: {p['users']} users past the window; Hit@10 (whole catalogue) of the next "
            "item, through the cache / full re-encoding:",
            f"  {p['slid_events']:,} events after the window slid: "
            f"{p['slid_cached']:.4f} / {p['slid_full']:.4f}",
            f"  {p['within_events']:,} events within the window: "
            f"{p['within_cached']:.4f} / {p['within_full']:.4f}",
            f"  cache: {p['cache_hits']:,} hits, {p['cache_misses']:,} misses, "
            f"{p['cache_restarts']:,} restarts",
        ]
    lines.append(
        f"{r['costs'][0]['users'] if r['costs'] else 0} users per call, {r['items']} items, "
        f"{r['device']}, {r['threads']} threads; machine: {m['cpu']}, {m['cores']} cores, "
        f"torch {m['torch']}"
    )
    return "\n".join(lines)
