"""Offline training of the sequence model.

    rtrank train ../shared/data/amazon_games.txt --out games.safetensors

Reads the data, builds the vocabulary, splits leave-one-out, trains on the training part
with next-item loss at every position, validates after each epoch (NDCG@10, sampled-100
by default) and keeps the best epoch, written to ``--out`` whenever it improves. Selection
stops at ``epochs``, at ``patience`` epochs without improvement, or when ``max_minutes`` of
wall time are spent (checked before every batch). Then the *refit*: ``refit_epochs`` more
epochs from the selected weights on every item but the test ones (training part plus each
user's validation item), at ``refit_lr``, within the same ``max_minutes``; the refit model
is returned and written to ``--out``. The test items are never trained on.

Why the refit: Games' test items are each user's newest, and what the training part
teaches about them is older (see `rtrank.model.quality`); the validation items are the
newest data the model may learn from. The same refit on the training part alone does not
raise test quality: the validation items help, not more steps (`rtrank bench quality`
reports the selected model beside the refit one; docs/decisions.md).

Batches are bucketed by length (a shuffled window of batches is sorted by length) and
trimmed to their longest history: positions count back from the latest item, so the
width does not change the model's output, and most Amazon histories are short.

Two regularisers are on by default: each input item is replaced by a random item with
probability ``item_noise`` (0.2), and validation (hence the kept model) uses an exponential
moving average of the weights (``ema_decay``). Together they raised Games' sampled-100 test
Hit@10 from 0.708 to 0.720 (docs/decisions.md); noise slows training, and the budget has
room for it. Why test trails validation: `rtrank.model.quality`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from rtrank.model.checkpoint import save_checkpoint
from rtrank.model.data import Split, file_fingerprint, leave_one_out, read_sequences
from rtrank.model.evaluate import EvalSet, Metrics, evaluate, make_eval_set, model_scorer
from rtrank.model.online import outranked_share
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.serving import resolve_device
from rtrank.model.vocab import Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200  # upper bound; patience and max_minutes usually stop first
    batch_size: int = 128  # small batches = more updates per CPU-minute on sparse data
    lr: float = 2e-3  # 1e-3 (the paper's) learnt ~2x slower per epoch; budget is short
    seed: int = 0
    device: str = "auto"
    max_minutes: float = 14.0  # wall-time budget for training + per-epoch validation
    patience: int = 4  # epochs without a better validation NDCG@10 before stopping
    lr_decay: float = 0.5  # lr factor after an epoch without improvement (1.0: constant lr)
    eval_protocol: str = "sampled100"  # protocol of the per-epoch validation
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    bucket_batches: int = 50  # batches per length-sorted window
    item_noise: float = 0.2  # share of input items replaced by random ones (SSE regulariser)
    ema_decay: float = 0.998  # validate and keep a moving average of the weights (0: off)
    refit_epochs: int = 5  # then epochs on training + validation items (0: keep the selection)
    refit_lr: float = 5e-4  # Adam rate of those epochs (restarted from the selected weights)


@dataclass
class TrainResult:
    model: SASRec  # the best epoch's weights, in eval mode
    best_epoch: int
    best_valid: Metrics | None
    history: list[dict] = field(default_factory=list)  # per epoch: loss, valid metrics, secs
    selected: SASRec | None = None  # the best epoch's weights before the refit (None: no refit)
    refit: list[dict] = field(default_factory=list)  # per refit epoch: loss, secs
    seconds: float = 0.0
    device: str = "cpu"


@dataclass
class Dataset:
    """A data file turned into what training and evaluation need."""

    vocab: Vocabulary
    split: Split
    fingerprint: str
    name: str


def load_dataset(path: str, fmt: str = "auto", vocab: Vocabulary | None = None) -> Dataset:
    """Reads ``path`` and splits it; see `make_dataset` for ``vocab``."""
    return make_dataset(read_sequences(path, fmt), vocab, file_fingerprint(path), str(path))


def make_dataset(
    sequences: dict[str, list[str]],
    vocab: Vocabulary | None = None,
    fingerprint: str = "",
    name: str = "",
) -> Dataset:
    """Maps item ids to rows and splits leave-one-out.

    Without ``vocab`` a new one is built (rows in order of first appearance). With one
    (evaluating a checkpoint), items it does not know are dropped from the sequences.
    """
    if vocab is None:
        vocab = Vocabulary()
        rows = {u: [vocab.add(i) for i in items] for u, items in sequences.items()}
        vocab.version = 1
    else:
        rows = {u: vocab.rows(items) for u, items in sequences.items()}
    return Dataset(vocab, leave_one_out(rows), fingerprint, name)


def training_arrays(
    train: dict[str, list[int]], max_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Left-padded inputs (N, max_len), targets (N, max_len) and lengths (N,).

    One example per user with at least 2 training items: input = items[:-1], target =
    items[1:], both cut to their latest ``max_len``.
    """
    seqs = [s for s in train.values() if len(s) >= 2]
    x = np.zeros((len(seqs), max_len), dtype=np.int64)
    y = np.zeros((len(seqs), max_len), dtype=np.int64)
    lengths = np.zeros(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        inp, tgt = s[:-1][-max_len:], s[1:][-max_len:]
        x[i, max_len - len(inp) :] = inp
        y[i, max_len - len(tgt) :] = tgt
        lengths[i] = len(inp)
    return x, y, lengths


class WeightAverage:
    """A copy of a model whose weights are an exponential moving average of the model's
    (warm-up as in TensorFlow's: the decay grows from 0.1 towards ``decay`` over the first
    steps). Validate and keep ``model``; train the original."""

    def __init__(self, model: SASRec, decay: float) -> None:
        self.decay = decay
        self.steps = 0
        self.model = copy.deepcopy(model)
        # state_dict tensors share storage with the parameters: pair them once
        self._pairs = [
            (avg, live)
            for avg, live in zip(
                self.model.state_dict().values(), model.state_dict().values(), strict=True
            )
            if avg.is_floating_point()
        ]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, live in self._pairs:
            avg.lerp_(live, 1 - d)


def replace_items(seqs: torch.Tensor, share: float, num_items: int) -> torch.Tensor:
    """``seqs`` with each item (not padding) replaced by a uniformly random item row with
    probability ``share``: the input-side Stochastic Shared Embeddings regulariser (Wu et
    al., 2019), which keeps the model from leaning on any single history item."""
    swap = (torch.rand(seqs.shape, device=seqs.device) < share) & (seqs != 0)
    return torch.where(swap, torch.randint_like(seqs, 1, num_items), seqs)


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, window: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of indices whose members have similar lengths."""
    perm = rng.permutation(len(lengths))
    batches = []
    for start in range(0, len(perm), batch_size * window):
        chunk = perm[start : start + batch_size * window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


Arrays = tuple[torch.Tensor, torch.Tensor, np.ndarray]  # inputs, targets, lengths


def run_epoch(
    model: SASRec,
    opt: torch.optim.Optimizer,
    averaged: WeightAverage | None,
    arrays: Arrays,
    cfg: TrainConfig,
    rng: np.random.Generator,
    deadline: float,
    desc: str,
    device: torch.device,
) -> tuple[float, int, bool]:
    """One pass over ``arrays`` in length-bucketed batches; returns (summed loss, batches,
    whether ``deadline`` stopped it)."""
    xt, yt, lengths = arrays
    model.train()
    total, count = 0.0, 0
    for idx in tqdm(
        bucketed_batches(lengths, cfg.batch_size, cfg.bucket_batches, rng),
        desc=desc,
        leave=False,
        unit="batch",
    ):
        if time.monotonic() > deadline:
            return total, count, True
        width = int(lengths[idx].max())
        seqs = xt[idx, -width:].to(device)  # (B, W): trimmed to the longest history
        targets = yt[idx, -width:].to(device)
        if cfg.item_noise > 0:
            seqs = replace_items(seqs, cfg.item_noise, model.config.num_items)
        _, loss = model(seqs, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if averaged is not None:
            averaged.update()
        total += loss.item()
        count += 1
    return total, count, False


def train(
    data: Dataset,
    model_config: SASRecConfig,
    cfg: TrainConfig = TrainConfig(),
    out: str | None = None,
    valid_set: EvalSet | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Trains a fresh model on ``data.split.train``; see the module docstring.

    Args:
        data: from `load_dataset`.
        model_config: its ``num_items`` must equal ``len(data.vocab)``.
        cfg: training options.
        out: checkpoint path written at every improvement and once more at the end, with
            the returned model and its `held_out_outranked` (measured once, at the end:
            a fraction of an epoch's time); None: keep in memory only.
        valid_set: validation inputs (built from ``data`` when None).
        on_epoch: called with each epoch's history entry (progress reporting).
    """
    start, cpu_start = time.monotonic(), time.process_time()
    deadline = start + cfg.max_minutes * 60.0
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if model_config.num_items != len(data.vocab):
        raise ValueError("model_config.num_items must equal len(data.vocab)")
    model = SASRec(model_config).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98))
    averaged = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    kept = averaged.model if averaged is not None else model  # validated, checkpointed
    arrays = _tensors(training_arrays(data.split.train, model_config.max_len))
    if len(arrays[2]) == 0:
        raise ValueError("no user has 2 training items: nothing to train on")
    if valid_set is None:
        valid_set = make_eval_set(data.split, "valid", cfg.eval_protocol, len(data.vocab), cfg.seed)
    result = TrainResult(model=model, best_epoch=0, best_valid=None, device=str(device))
    best_state, best_ndcg, stale = None, -math.inf, 0
    log.info(
        "training on %d users, %d items, device %s", len(arrays[2]), len(data.vocab) - 1, device
    )
    for epoch in range(1, cfg.epochs + 1):
        total, count, out_of_time = run_epoch(
            model, opt, averaged, arrays, cfg, rng, deadline, f"epoch {epoch}", device
        )
        if count == 0:
            break
        metrics = evaluate(model_scorer(kept), valid_set)
        entry = {
            "epoch": epoch,
            "loss": total / count,
            "valid": metrics.as_dict(),
            "seconds": time.monotonic() - start,
            "cpu_seconds": time.process_time() - cpu_start,  # fair when the CPU is shared
        }
        result.history.append(entry)
        log.info(
            "epoch %d loss %.4f valid %s hit@10 %.4f ndcg@10 %.4f mrr %.4f (%.0fs)",
            epoch,
            entry["loss"],
            cfg.eval_protocol,
            metrics.hit,
            metrics.ndcg,
            metrics.mrr,
            entry["seconds"],
        )
        if on_epoch:
            on_epoch(entry)
        if metrics.ndcg > best_ndcg:
            best_ndcg, stale = metrics.ndcg, 0
            best_state = copy.deepcopy(kept.state_dict())
            result.best_epoch, result.best_valid = epoch, metrics
            if out:
                _save(out, kept, data, {"epoch": epoch, "valid": metrics.as_dict()})
        else:
            stale += 1
            for group in opt.param_groups:
                group["lr"] *= cfg.lr_decay
        if out_of_time or stale >= cfg.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
        extra = {"epoch": result.best_epoch, "valid": result.best_valid.as_dict()}
        if cfg.refit_epochs > 0 and data.split.valid:
            selected = copy.deepcopy(model).eval()
            result.refit = refit(model, data.split, cfg, rng, deadline, device)
            if result.refit:
                result.selected = selected
                extra["refit_epochs"] = len(result.refit)
        if out:
            reference = held_out_outranked(model, data.split)
            _save(out, model, data, {**extra, "held_out_outranked": reference})
    model.eval()
    result.seconds = time.monotonic() - start
    return result


def refit(
    model: SASRec,
    split: Split,
    cfg: TrainConfig,
    rng: np.random.Generator,
    deadline: float,
    device: torch.device,
) -> list[dict]:
    """Trains the selected ``model`` further on every item but the test ones (the training
    part plus each user's validation item), ``cfg.refit_epochs`` epochs at ``cfg.refit_lr``
    within ``deadline``; returns one entry (loss, seconds) per epoch run.

    Validation has served its purpose once the epoch is chosen; its items are each user's
    newest before the test item, the part of the data most like what comes next.
    """
    arrays = _tensors(training_arrays(split.before_test(), model.config.max_len))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.refit_lr, betas=(0.9, 0.98))
    entries = []
    for epoch in range(1, cfg.refit_epochs + 1):
        started = time.monotonic()
        total, count, out_of_time = run_epoch(
            model, opt, None, arrays, cfg, rng, deadline, f"refit {epoch}", device
        )
        if count:
            entries.append(
                {"epoch": epoch, "loss": total / count, "seconds": time.monotonic() - started}
            )
            log.info("refit epoch %d loss %.4f", epoch, total / count)
        if out_of_time:
            break
    return entries


HELD_OUT_EXAMPLES = 4096  # test examples measured for a checkpoint's held_out_outranked


def held_out_outranked(model: SASRec, split: Split) -> float | None:
    """`rtrank.model.online.outranked_share` of the test examples (at most ``HELD_OUT_EXAMPLES``,
    spread evenly over the users), which no training epoch reads: the online trainer's
    reference for how well this model ranks data it never saw. None without test users."""
    _, histories, targets = split.eval_inputs("test")
    if not targets:
        return None
    every = max(1, len(targets) // HELD_OUT_EXAMPLES)
    return round(outranked_share(model, histories[::every], targets[::every]), 4)


def _save(out: str, model: SASRec, data: Dataset, extra: dict) -> None:
    save_checkpoint(
        out,
        model,
        data.vocab,
        version=1,
        data_fingerprint=data.fingerprint,
        extra={**extra, "data": data.name},
    )


def _tensors(arrays: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Arrays:
    x, y, lengths = arrays
    return torch.from_numpy(x), torch.from_numpy(y), lengths
