"""Online learning: a replay buffer, incremental steps, and versioned model updates.

    learner = OnlineLearner(model, vocab, version=1, config=OnlineConfig())
    learner.observe(examples)          # new items grow the vocabulary and the embedding
    learner.step(examples)             # one gradient step: these examples + replayed ones
    update = learner.publish(version=2, snapshot=False)   # a Delta (or a Snapshot)
    apply_update(served_model, served_vocab, served_version, update)  # on a worker

A step uses the model's offline loss (`SASRec.loss_logits`, sampled softmax by default), so
online steps pull the model where pretraining did, with fewer negatives (``negatives``)
than pretraining: under Adam a target row moves by about ``lr`` whatever the gradient's
size, so fewer negatives change little and cost less. Each fresh example is stepped on
once, mixed with ``replay_ratio`` replayed ones (`ReplayBuffer`: the newest examples and a
uniform reservoir of older ones), against forgetting. Steps keep the model's dropout.

What a step trains, and why (docs/decisions.md, "Online learning"):

- Item rows only, by default (``dense_lr`` 0): large steps on the pretrained transformer
  cost quality on a stable catalogue, and without them the trunk runs without autograd, so
  a step is cheaper and the trainer fresher.
- The targets' rows only, by default (``rows_per_step`` 0): Adam's first steps on a row are
  about ``lr`` in every dimension, so rows with tiny gradients (prefixes, negatives) would
  move as far as the targets, which is noise on a pretrained catalogue.
- Rows by a *lazy*, sparsified Adam: every row a step does not update keeps its exact bits,
  so a delta carries only the rows that changed (plus new vocabulary entries, and dense
  parameters when trained), and ``apply(delta)`` to the base reproduces the trainer's
  weights exactly (tested).
- A rate that follows the stream's surprise (``lr_scale``): each step measures the share of
  its sampled negatives that outrank each target (`outranked_by_negatives`, a moving
  average over steps) and compares it with the same share on data the model never trained
  on (``held_out_outranked``, recorded in the checkpoint by training). The step takes
  ``lr`` times `surprise_scale`: 0 at the held-out level, 1 at chance (0.5), at least
  ``surprise_floor``. A stream like the pretraining data nudges the model; one whose
  transitions changed moves it fast, and the rate falls as the model relearns. No fixed
  rate served both of `rtrank bench online`'s streams (docs/benchmarks.md). Without a
  reference (a model from scratch, an old checkpoint) every step takes the full rate.

What an update carries and how it is applied is `rtrank.model.updates`; no Kafka here (the
wire format, chunks and checksums, is `rtrank.streams.trainer.model_updates`).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rtrank.model.sasrec import SASRec, listed_rows
from rtrank.model.serving import pad_batch
from rtrank.model.updates import EMB, Delta, Snapshot, Update, make_snapshot
from rtrank.model.vocab import Vocabulary

LENGTH_BUCKETS = 8  # slices of a step's batch, each padded to its own longest prefix


@dataclass(frozen=True)
class Example:
    """One training example: the items before an event (oldest first), and its item."""

    prefix: tuple[str, ...]
    item_id: str
    ts: int = 0  # event time, epoch ms (for freshness)
    weight: float = 1.0  # how much it counts in a step (> 0; e.g. a purchase more than a view)
    user_id: str = ""  # whose behaviour it is: a user who is forgotten takes theirs along


@dataclass(frozen=True)
class OnlineConfig:
    lr: float = 5e-3  # Adam on item rows (new items and drift need large steps)
    dense_lr: float = 0.0  # Adam on the dense (transformer) parameters; 0: not trained online
    replay_ratio: float = 0.25  # replayed examples per fresh example in a step (forgetting guard)
    recent_size: int = 5_000  # newest examples kept verbatim (recent half of the replay mix)
    reservoir_size: int = 20_000  # uniform sample of everything older (long-term memory)
    recent_share: float = 0.5  # share of replayed examples drawn from the recent pool
    rows_per_step: int = 0  # item rows updated per step (largest gradients) besides targets
    negatives: int = 256  # sampled-softmax negatives shared by a step (0: the model's own)
    surprise_floor: float = 0.05  # least share of ``lr`` a step takes (see `surprise_scale`)
    clip_grad_norm: float = 5.0  # longest gradient a step takes (rows + dense); well above usual
    # steps, so it only tames outliers; 0: off
    max_items: int = 0  # vocabulary cap: beyond it new items take the coldest rows; 0: none
    seed: int = 0

    @property
    def trains_dense(self) -> bool:
        return self.dense_lr > 0


class ReplayBuffer:
    """Recent examples verbatim plus a reservoir sample of all older ones.

    ``sample`` mixes both pools (``recent_share`` from the recent one), so a step sees what
    just happened and what happened long ago: the model adapts without forgetting.
    """

    def __init__(self, recent_size: int, reservoir_size: int, seed: int = 0) -> None:
        self.recent: deque[Example] = deque(maxlen=recent_size)
        self.reservoir: list[Example] = []
        self.reservoir_size = reservoir_size
        self.retired = 0  # examples that ever left the recent pool
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.recent) + len(self.reservoir)

    def add(self, example: Example) -> None:
        if self.recent.maxlen and len(self.recent) == self.recent.maxlen:
            self._retire(self.recent[0])
        self.recent.append(example)

    def sample(self, n: int, recent_share: float) -> list[Example]:
        """``n`` examples (fewer when the buffer holds fewer), with replacement."""
        if n <= 0 or not len(self):
            return []
        if not self.reservoir:
            from_recent = n
        elif not self.recent:
            from_recent = 0
        else:
            from_recent = round(n * recent_share)
        recent = [self._rng.choice(self.recent) for _ in range(from_recent)]
        older = [self._rng.choice(self.reservoir) for _ in range(n - from_recent)]
        return recent + older

    def forget(self, user_id: str) -> int:
        """Remove every example of ``user_id`` from both pools; returns how many.

        The reservoir is left smaller: the next examples retired fill it again, which
        samples them a little more often than Algorithm R would.
        """
        recent = [e for e in self.recent if e.user_id != user_id]
        reservoir = [e for e in self.reservoir if e.user_id != user_id]
        removed = len(self) - len(recent) - len(reservoir)
        self.recent = deque(recent, maxlen=self.recent.maxlen)
        self.reservoir = reservoir
        return removed

    def _retire(self, example: Example) -> None:
        """Reservoir sampling (Algorithm R) over the stream of examples leaving ``recent``."""
        self.retired += 1
        if len(self.reservoir) < self.reservoir_size:
            self.reservoir.append(example)
            return
        slot = self._rng.randrange(self.retired)
        if slot < self.reservoir_size:
            self.reservoir[slot] = example


class OnlineLearner:
    """Owns the trainer's model copy, its optimiser state and the rows touched since the
    last published version."""

    def __init__(
        self,
        model: SASRec,
        vocab: Vocabulary,
        version: int,
        config: OnlineConfig = OnlineConfig(),
        held_out_outranked: float | None = None,
    ) -> None:
        """``held_out_outranked``: `outranked_share` of the starting model on examples it
        never trained on (a checkpoint's ``held_out_outranked``); None: every step takes the
        full ``lr``."""
        self.model, self.vocab, self.version, self.config = model, vocab, version, config
        self.held_out_outranked = held_out_outranked
        self.outranked: float | None = None  # moving average over steps (see `surprise_scale`)
        self.lr_scale = 1.0
        self.buffer = ReplayBuffer(config.recent_size, config.reservoir_size, config.seed)
        self._dense_opt = self._make_dense_opt() if config.trains_dense else None
        D = model.config.dim
        self._m = torch.zeros(len(vocab), D)  # lazy Adam moments of the item rows
        self._v = torch.zeros(len(vocab), D)
        self._t = torch.zeros(len(vocab))  # per-row step counts (bias correction)
        self._touched: set[int] = set()
        self._vocab_len_published = len(vocab)
        self._reused: dict[int, str] = {}  # rows given to new items since the last publish
        self._used = torch.zeros(len(vocab))  # per row: the `observe` call that last named it
        self._observed = 0  # `observe` calls so far
        self.steps = 0
        self.skipped = 0  # steps refused for a NaN or infinite loss or gradient

    def _make_dense_opt(self) -> torch.optim.Optimizer:
        """Adam over the dense parameters (only when ``dense_lr`` trains them)."""
        return torch.optim.Adam(self._dense_params(), lr=self.config.dense_lr, betas=(0.9, 0.98))

    def _dense_params(self) -> list[torch.nn.Parameter]:
        """The parameters the dense optimiser trains (none when it does not)."""
        if not self.config.trains_dense:
            return []
        return [p for n, p in self.model.named_parameters() if n != EMB]

    def observe(self, examples: Iterable[Example]) -> None:
        """Adds every item the examples name to the vocabulary (growing the model), and
        marks their rows as used now.

        With a cap (``max_items``), an item beyond it takes the row of the coldest item
        instead, the one named longest ago (`_recycle`), and the old id is forgotten: the
        trainer's own examples naming it are left out of steps from then on, and workers
        forget it with the delta that carries the row (`Delta.reused`). An item that a
        full vocabulary has no row for now (more new items at once than rows not named by
        these examples) stays unknown, and its examples are left out.
        """
        named = dict.fromkeys(item for ex in examples for item in (*ex.prefix, ex.item_id))
        cap = self.config.max_items
        waiting = []
        for item in named:
            if item not in self.vocab and cap and len(self.vocab) - 1 >= cap:
                waiting.append(item)
            else:
                self.vocab.add(item)
        if len(self.vocab) > self.model.config.num_items:
            self.model.grow(len(self.vocab))
        if len(self.vocab) > len(self._m):
            # Room for an eighth more rows at once: a stream meets new items at most steps,
            # and copying both moment tables for each few rows was a fifth of a Games step.
            extra = max(len(self.vocab) - len(self._m), len(self._m) // 8)
            D = self.model.config.dim
            self._m = torch.cat([self._m, torch.zeros(extra, D)])
            self._v = torch.cat([self._v, torch.zeros(extra, D)])
            self._t = torch.cat([self._t, torch.zeros(extra)])
            self._used = torch.cat([self._used, torch.zeros(extra)])
        self._observed += 1
        self._used[self.vocab.rows(named)] = self._observed
        if waiting:
            self._recycle(waiting)

    @torch.no_grad()
    def _recycle(self, items: list[str]) -> None:
        """Gives ``items`` (unknown) the rows of the coldest items, fewest-recently named
        first; rows named by this `observe` call are never taken. Each row given starts
        afresh: re-initialised like a new row (`SASRec.typical_rows`), its Adam moments
        zeroed, and it is published with the next version."""
        used = self._used[1 : len(self.vocab)]  # (V-1,) item rows
        free = int((used < self._observed).sum())
        items = items[:free]
        if not items:
            return
        rows = (torch.topk(used, len(items), largest=False).indices + 1).tolist()
        self.vocab.reassign(dict(zip(rows, items, strict=True)))
        self.model.item_emb.weight[rows] = self.model.typical_rows(len(rows))
        self._m[rows], self._v[rows], self._t[rows] = 0.0, 0.0, 0.0
        self._used[rows] = self._observed
        self._reused.update(zip(rows, items, strict=True))
        self._touched.update(rows)

    def step(self, fresh: list[Example]) -> float | None:
        """One gradient step on ``fresh`` plus replayed examples, each counted by its weight
        (a weighted mean of the examples' losses); ``fresh`` then joins the buffer. Returns
        the loss, or None when no example has a known prefix or the step was skipped: a
        NaN or infinite loss or gradient changes nothing and is counted in ``skipped``, so
        the model never holds a non-finite weight to publish."""
        self.observe(fresh)
        n_replay = round(len(fresh) * self.config.replay_ratio)
        batch = [
            e
            for e in fresh + self.buffer.sample(n_replay, self.config.recent_share)
            if e.item_id in self.vocab and any(i in self.vocab for i in e.prefix)
        ]  # an item recycled away (`observe`) is unknown
        for ex in fresh:
            self.buffer.add(ex)
        if not batch:
            return None
        loss = self._step(batch)
        if loss is None:
            self.skipped += 1
            return None
        self.steps += 1
        return loss

    def _step(self, batch: list[Example]) -> float | None:
        """One optimiser step on the weighted mean loss of ``batch``; None, and nothing
        changed, when the loss or the gradient is not finite.

        The batch is sorted by prefix length and its gradient accumulated over
        ``LENGTH_BUCKETS`` slices, each padded only to its own longest prefix: outputs do not
        depend on padding, and most prefixes are short, so this skips most of the padded
        positions.

        The step trains a copy of just the item rows it reads (prefixes, targets, one set of
        sampled negatives shared by the slices), not the whole table: gradients of the other
        rows are zero anyway, and zero-filling and summing dense (V, D) gradients per slice
        was a third of a step. Only each prefix's last position feeds the loss, so the last
        block computes that position alone (`SASRec.hidden` with ``last_only``). A step's
        time: docs/benchmarks.md, "Component timings".

        With ``dense_lr`` 0 the trunk is not trained, so it runs without autograd: the
        gradient reaches the rows the loss scores (targets, negatives), not the prefixes'
        rows behind the trunk.

        The whole gradient (rows and dense together) is scaled down to ``clip_grad_norm``
        when longer: one batch of outliers cannot throw the rows or the trunk far.
        """
        model = self.model
        model.train()
        batch = sorted(batch, key=lambda e: len(e.prefix))
        prefixes = [self.vocab.rows(e.prefix) for e in batch]
        targets = torch.tensor([self.vocab.row(e.item_id) for e in batch])  # (B,)
        weights = torch.tensor([e.weight for e in batch])  # (B,)
        weight = model.item_emb.weight
        negs = (
            None
            if model.config.loss == "ce"
            else model.sample_negatives(count=self.config.negatives)
        )
        if negs is None:  # the full softmax reads every row
            used = torch.arange(weight.shape[0])
        else:
            _, read = listed_rows(prefixes)  # every row the prefixes read
            used = torch.unique(torch.cat([torch.zeros(1, dtype=torch.long), targets, negs, read]))
            negs = torch.searchsorted(used, negs)
        sub = weight.detach()[used].requires_grad_()  # (R, D): row 0 = padding, sorted
        local_targets = torch.searchsorted(used, targets)
        train_trunk = self._dense_opt is not None
        if train_trunk:
            self._dense_opt.zero_grad(set_to_none=True)
        total = 0.0
        outranked = []
        size = math.ceil(len(batch) / LENGTH_BUCKETS)
        for start in range(0, len(batch), size):
            part = slice(start, start + size)
            seqs = torch.searchsorted(used, pad_batch(prefixes[part], model.config.max_len))
            with torch.set_grad_enabled(train_trunk):
                h = model.hidden(seqs, sub, last_only=True)[:, -1, :]  # (b, D)
            logits, labels = model.loss_logits(h, local_targets[part], sub, negs)  # offline loss
            losses = F.cross_entropy(logits, labels, reduction="none") * weights[part]
            outranked.append(outranked_by_negatives(logits.detach(), labels))
            loss = losses.sum() / weights.sum()
            loss.backward()
            total += float(loss.detach())
        dense_grads = [p.grad for p in self._dense_params() if p.grad is not None]
        if not (math.isfinite(total) and clip_gradient([sub.grad, *dense_grads], self.config)):
            return None
        self._track_surprise(float(torch.cat(outranked).mean()))
        if train_trunk:
            for group in self._dense_opt.param_groups:
                group["lr"] = self.config.dense_lr * self.lr_scale
            self._dense_opt.step()
        self._lazy_adam(weight, used, sub.grad, local_targets)
        return total

    def _track_surprise(self, batch_outranked: float) -> None:
        """Folds a step's `outranked_by_negatives` share into the moving average (weight
        0.2: about the last five steps) and sets the step's ``lr_scale`` from it."""
        if self.outranked is None:
            self.outranked = batch_outranked
        else:
            self.outranked = 0.8 * self.outranked + 0.2 * batch_outranked
        if self.held_out_outranked is not None:
            self.lr_scale = surprise_scale(
                self.outranked, self.held_out_outranked, self.config.surprise_floor
            )

    @torch.no_grad()
    def _lazy_adam(
        self,
        weight: torch.nn.Parameter,
        used: torch.Tensor,
        grad: torch.Tensor,
        local_targets: torch.Tensor,
    ) -> None:
        """Adam on the targets' rows and the ``rows_per_step`` rows with the largest
        gradient; every other row stays bit-identical (so a delta carries only these).
        ``grad`` (R, D) is the gradient of rows ``used`` (R,), sorted, row 0 first;
        ``local_targets`` index ``used``.

        A row's second moment does not start at zero but at the step's mean squared
        gradient (so it needs no bias correction): from zero, Adam's first steps on a row
        are ``lr`` in every dimension whatever its gradient, and most rows of a pretrained
        catalogue are stepped only a few times in a stream; from the prior, a row moves in
        proportion to how far its gradient stands above the step's typical one (better on
        both of `rtrank bench online`'s streams in offline replays).
        """
        norms = grad.norm(dim=1)  # (R,)
        norms[0] = 0.0
        top = norms.topk(min(self.config.rows_per_step, len(norms))).indices
        local = torch.unique(torch.cat([top, local_targets]))
        local = local[norms[local] > 0]
        if not len(local):
            return
        rows = used[local]
        b1, b2, eps = 0.9, 0.98, 1e-8
        g = grad[local]  # (R', D)
        squared = g * g
        first = rows[self._t[rows] == 0]
        self._v[first] = squared.mean()  # the prior: this step's mean squared gradient
        self._m[rows] = b1 * self._m[rows] + (1 - b1) * g
        self._v[rows] = b2 * self._v[rows] + (1 - b2) * squared
        self._t[rows] += 1
        t = self._t[rows].unsqueeze(1)  # (R', 1)
        m_hat = self._m[rows] / (1 - b1**t)
        weight[rows] -= self.config.lr * self.lr_scale * m_hat / (self._v[rows].sqrt() + eps)
        self._touched.update(rows.tolist())

    @property
    def has_changes(self) -> bool:
        return bool(self._touched) or len(self.vocab) > self._vocab_len_published

    def publish(self, version: int, snapshot: bool, meta: dict[str, Any] | None = None) -> Update:
        """The update taking the last published version to ``version`` (which becomes it)."""
        if version <= self.version:
            raise ValueError(f"version {version} is not after {self.version}")
        update = self.snapshot(version, meta) if snapshot else self.delta(version, meta)
        self.version = version
        self._touched.clear()
        self._reused.clear()
        self._vocab_len_published = len(self.vocab)
        return update

    def snapshot(self, version: int, meta: dict[str, Any] | None = None) -> Snapshot:
        return make_snapshot(self.model, self.vocab, version, meta)

    def delta(self, version: int, meta: dict[str, Any] | None = None) -> Delta:
        before = self._vocab_len_published
        rows = sorted(self._touched | set(range(before, len(self.vocab))))
        idx = torch.tensor(rows, dtype=torch.long)
        weight = self.model.item_emb.weight.detach()
        return Delta(
            version=version,
            base=self.version,
            vocab_len_before=before,
            new_items=self.vocab.items()[before - 1 :],
            reused=[(row, item) for row, item in sorted(self._reused.items()) if row < before],
            dense=self._dense_if_trained(),
            rows=idx,
            row_values=weight[idx].clone() if rows else weight[:0].clone(),
            meta=dict(meta or {}),
        )

    def _dense_if_trained(self) -> dict[str, torch.Tensor]:
        """The dense parameters, whole, when steps train them; else nothing (they are the
        base version's, and a delta without them is about half the size)."""
        if not self.config.trains_dense:
            return {}
        return {n: t.detach().clone() for n, t in self.model.state_dict().items() if n != EMB}


@torch.no_grad()
def clip_gradient(grads: list[torch.Tensor], config: OnlineConfig) -> bool:
    """Scale ``grads`` in place so that their joint norm is at most ``config.clip_grad_norm``
    (0: left as they are). False, and nothing scaled, when the norm is not finite."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if not bool(torch.isfinite(norm)):
        return False
    limit = config.clip_grad_norm
    if limit > 0 and float(norm) > limit:
        for g in grads:
            g.mul_(limit / float(norm))
    return True


def outranked_by_negatives(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per row of training ``logits`` (N, C) whose target column is ``labels`` (N,): the
    share of the other columns scored above the target (0: ranked first; about 0.5 against
    uniform negatives: no better than chance). Masked columns (-inf) never outrank."""
    if logits.shape[1] < 2:
        return torch.zeros(logits.shape[0])
    target = logits.gather(1, labels[:, None])  # (N, 1)
    return (logits > target).float().sum(1) / (logits.shape[1] - 1)


def surprise_scale(outranked: float, held_out_outranked: float, floor: float) -> float:
    """The share of the learning rate a step takes: how far the stream's targets rank below
    where the model ranks data it never trained on, from 0 (no worse: the stream is the
    pretraining's world) to 1 (no better than chance), at least ``floor``."""
    room = max(0.5 - held_out_outranked, 1e-6)
    return min(1.0, max(floor, (outranked - held_out_outranked) / room))


@torch.no_grad()
def outranked_share(
    model: SASRec,
    histories: list[list[int]],
    targets: list[int],
    negatives: int = OnlineConfig.negatives,
    batch_size: int = 256,
) -> float:
    """Mean `outranked_by_negatives` of ``targets`` (rows) after ``histories`` (rows,
    oldest first), measured as an online step measures its batch (training mode, so
    dropout on; ``negatives`` uniform negatives per batch of ``batch_size``). On examples
    the model never trained on it is the reference `OnlineLearner` compares the stream
    with. The model's mode is left as it was."""
    if not targets:
        raise ValueError("no examples to measure")
    was_training = model.training
    model.train()
    shares = []
    try:
        for start in range(0, len(targets), batch_size):
            seqs = pad_batch(histories[start : start + batch_size], model.config.max_len)
            h = model.hidden(seqs.to(model.device), last_only=True)[:, -1, :]
            tgt = torch.tensor(targets[start : start + batch_size], device=model.device)
            negs = None
            if model.config.loss != "ce":
                negs = model.sample_negatives(model.device, negatives)
            logits, labels = model.loss_logits(h, tgt, None, negs)
            shares.append(outranked_by_negatives(logits, labels).cpu())
    finally:
        model.train(was_training)
    return float(torch.cat(shares).mean())
