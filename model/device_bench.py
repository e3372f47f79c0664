"""The model side on one device, in one table: what a GPU (or this CPU) serves and trains.

    python -m rtrank.model.device_bench                       # the device found (CUDA first)
    python -m rtrank.model.device_bench --items 23715,1000000 --batches 64,256,1024,4096

No Kafka and no Faust: it needs torch, numpy and faiss only, so it runs on a lent GPU
machine that has PyTorch and the project's wheels. Each row is one way of serving, timed on
the same randomly initialised model per catalogue size (speed does not depend on training):

- ``cold``: users/s of encoding whole histories (1..max_len items, grouped by length as
  served) and finding each user's top-10 among all items, seen items excluded, through
  the ``exact`` float32 scan, the ``bf16`` shortlist (a bfloat16 scan, its best rows
  rescored in float32: `rtrank.model.serving.ItemIndex`) or the ``ivf`` index
  (`rtrank.model.item_ann.IvfIndex`, built before the clock starts);
- ``warm``: the same with the encode cache holding every user's history, one item appended
  (`rtrank.model.encode_cache`), exact scan;
- ``train``: milliseconds per online trainer step (`rtrank.model.online.OnlineLearner`) on
  that many fresh examples, and examples/s; on the CPU only (``TRAINS_ON``).

CUDA work is synchronised before each clock stops; on a CPU the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from rtrank.model.encode_bench import UNBOUNDED
from rtrank.model.encode_cache import EncodeCache, UserSequence
from rtrank.model.item_ann import IvfConfig, IvfIndex
from rtrank.model.online import Example, OnlineConfig, OnlineLearner
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import ItemIndex, resolve_device
from rtrank.model.synthetic import item_id
from rtrank.model.throughput import random_histories, seconds_per_call
from rtrank.model.vocab import Vocabulary

K = 10
TRAINS_ON = (
    "the online trainer runs on the CPU only (`OnlineLearner` keeps its optimiser state and "
    "index tensors on the CPU): no train rows on another device"
)


@dataclass(frozen=True)
class Row:
    items: int
    path: str  # cold | warm | train
    index: str  # exact | bf16 | ivf ("" for train)
    batch: int
    per_s: float  # users/s (cold, warm) or examples/s (train)
    ms_per_batch: float


def measure(
    device: torch.device,
    items: Sequence[int],
    batches: Sequence[int],
    indexes: Sequence[str] = ("exact", "bf16", "ivf"),
    rounds: int = 5,
    seed: int = 0,
) -> list[Row]:
    """Every row of the table (see the module doc) for each catalogue size in ``items``."""
    rows: list[Row] = []
    for size in items:
        torch.manual_seed(seed)
        vocab = Vocabulary(item_id(n) for n in range(size))
        model = SASRec(SASRecConfig(num_items=len(vocab))).to(device).eval()
        rng = np.random.default_rng(seed)
        for index in indexes:
            served = _index(model, index)
            for batch in batches:
                histories = random_histories(rng, model, batch)
                seconds = seconds_per_call(model, served, histories, K, rounds)
                rows.append(Row(size, "cold", index, batch, batch / seconds, seconds * 1e3))
        exact = ItemIndex(model, shortlist=False)
        for batch in batches:
            histories = random_histories(rng, model, batch)
            seconds = _warm_seconds(model, vocab, exact, histories, rounds)
            rows.append(Row(size, "warm", "exact", batch, batch / seconds, seconds * 1e3))
        for batch in batches if device.type == "cpu" else ():  # see TRAINS_ON
            seconds = _train_seconds(model, vocab, rng, batch, rounds)
            rows.append(Row(size, "train", "", batch, batch / seconds, seconds * 1e3))
    return rows


def _index(model: SASRec, kind: str) -> ItemIndex | IvfIndex:
    if kind == "ivf":
        return IvfIndex(model, IvfConfig())
    if kind not in ("exact", "bf16"):
        raise ValueError(f"unknown index {kind!r}: exact, bf16 or ivf")
    return ItemIndex(model, shortlist=kind == "bf16")


def _warm_seconds(
    model: SASRec,
    vocab: Vocabulary,
    index: ItemIndex,
    histories: list[list[int]],
    rounds: int,
) -> float:
    """Seconds per call of ``len(histories)`` users whose cached history gets one more item
    per call (histories cut to leave room for ``rounds`` + 1 appends in the window)."""
    room = model.config.max_len - rounds - 2
    ids = [[vocab.item(r) for r in h[:room]] for h in histories]
    extra = [[vocab.item(1 + (r % (len(vocab) - 1))) for r in h] for h in histories]
    cache = EncodeCache(UNBOUNDED)

    def users(n: int) -> list[UserSequence]:
        return [UserSequence(f"u{u}", 0, len(h) + n, h + extra[u][:n]) for u, h in enumerate(ids)]

    with torch.inference_mode():
        cache.encode(model, vocab, users(0))
        cache.encode(model, vocab, users(1))  # first calls pay one-time costs
        started = time.perf_counter()
        for n in range(2, rounds + 2):
            vecs = cache.encode(model, vocab, users(n))
            index.top_k(vecs, K)
        _sync(model.device)
    return (time.perf_counter() - started) / rounds


def _train_seconds(
    model: SASRec, vocab: Vocabulary, rng: np.random.Generator, batch: int, rounds: int
) -> float:
    """Seconds per online step on ``batch`` fresh examples, on a copy of ``model``."""
    trainee = SASRec(model.config).to(model.device)
    trainee.load_state_dict(model.state_dict())
    learner = OnlineLearner(trainee.train(), vocab, 1, OnlineConfig())

    def examples() -> list[Example]:
        return [
            Example(tuple(vocab.ids(h[:-1])), vocab.item(h[-1]))
            for h in random_histories(rng, model, batch)
            if len(h) > 1
        ]

    learner.step(examples())  # the first step pays one-time costs
    _sync(model.device)
    steps = [examples() for _ in range(rounds)]
    started = time.perf_counter()
    for fresh in steps:
        learner.step(fresh)
    _sync(model.device)
    return (time.perf_counter() - started) / rounds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def table(rows: Sequence[Row], device: str) -> str:
    lines = [f"device: {device}, torch {torch.__version__}, top-{K}"]
    lines.append("items      path   index   batch        per s   ms/batch")
    for r in rows:
        lines.append(
            f"{r.items:>9,}  {r.path:<5}  {r.index:<5}  {r.batch:>6,}  {r.per_s:>11,.0f}  "
            f"{r.ms_per_batch:>9.2f}"
        )
    lines.append("per s: users/s (cold, warm) or examples/s (train)")
    if not any(r.path == "train" for r in rows):
        lines.append(TRAINS_ON)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    parser.add_argument("--items", default="23715,1000000", help="catalogue sizes")
    parser.add_argument("--batches", default="64,256,1024,4096", help="users per call")
    parser.add_argument("--indexes", default="exact,bf16,ivf")
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per row")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per row")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    rows = measure(
        device,
        [int(n) for n in args.items.split(",")],
        [int(n) for n in args.batches.split(",")],
        [i.strip() for i in args.indexes.split(",")],
        args.rounds,
    )
    if args.json:
        for row in rows:
            print(json.dumps({"device": device_name(device), **asdict(row)}))
    else:
        print(table(rows, device_name(device)))


if __name__ == "__main__":
    main()
