"""How fast the served model answers: users/s of encode + top-k over the whole catalogue.

python -m rtrank.model.throughput --items 23715 --device cuda      # on any machine with torch
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from rtrank.model.item_ann import IvfConfig, IvfIndex
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import ItemIndex, encode_histories, resolve_device, resolve_shortlist


def inference_rate(
    model: SASRec,
    shortlist: bool,
    batch: int = 256,
    rounds: int = 20,
    k: int = 10,
    seed: int = 0,
    ivf: IvfConfig | None = None,
) -> float:
    """Users/s for batches of ``batch`` histories of 1..max_len items, seen items excluded,
    top-k found as a server finds it (`ItemIndex`, with or without its ``shortlist``, or
    with ``ivf`` the approximate `IvfIndex`, built before the clock starts)."""
    items = IvfIndex(model, ivf) if ivf else ItemIndex(model, shortlist)
    histories = random_histories(np.random.default_rng(seed), model, batch)
    return len(histories) / seconds_per_call(model, items, histories, k, rounds)


def random_histories(rng: np.random.Generator, model: SASRec, batch: int) -> list[list[int]]:
    """``batch`` histories of 1..max_len random item rows."""
    rows, max_len = model.config.num_items, model.config.max_len
    return [
        rng.integers(1, rows, size=int(rng.integers(1, max_len + 1))).tolist() for _ in range(batch)
    ]


def seconds_per_call(
    model: SASRec,
    items: ItemIndex | IvfIndex,
    histories: list[list[int]],
    k: int = 10,
    rounds: int = 20,
) -> float:
    """Wall-clock seconds of encoding ``histories`` and finding each one's top-k through
    ``items``, its own rows excluded; three warm-up calls first, CUDA work synchronised
    before the clock stops."""
    cuda = model.device.type == "cuda"
    with torch.inference_mode():
        for _ in range(3):
            items.top_k(encode_histories(model, histories), k, histories)
        if cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(rounds):
            items.top_k(encode_histories(model, histories), k, histories)
        if cuda:
            torch.cuda.synchronize()
    return (time.perf_counter() - started) / rounds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=23_715)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batches", default="1,64,256,1024")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--shortlist", default="auto", help="auto, on or off (ItemIndex)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = SASRec(SASRecConfig(num_items=args.items + 1)).to(device).eval()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    for batch in (int(b) for b in args.batches.split(",")):
        rate = inference_rate(model, resolve_shortlist(args.shortlist, device), batch=batch)
        print(
            json.dumps(
                {"device": name, "items": args.items, "batch": batch, "users_per_s": round(rate, 1)}
            )
        )


if __name__ == "__main__":
    main()
