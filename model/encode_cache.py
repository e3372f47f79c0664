"""Each recently active user's keys and values, kept so that the next event encodes one new
position per block (`SASRec.extend`) instead of the user's whole window.

    cache = EncodeCache(max_bytes=256 << 20)
    vecs = cache.encode(model, vocab, [UserSequence("u1", 3, events, history), ...])
    cache.clear()             # the model's weights changed
    cache.forget_groups({3})  # the users of partition 3 are served elsewhere now

A model whose positions are counted from the window's start (``SASRecConfig.positions``
``from_start``) gives an item the same keys and values whatever is appended after it, so
what `SASRec.encode_kv` computed for a history stays valid while the history grows.

Contract, per user (``UserSequence``: the history as the caller keeps it, its latest items,
and ``events``, how many items were ever appended to it):

- Hit: the history is the cached one with ``events`` minus the cached count items appended
  (checked on the ids) and the window still holds: the new items are encoded one position
  at a time over the cached ones. Equal to encoding the whole history, to float rounding.
- Miss (no entry, an entry the history does not extend, e.g. state restored from elsewhere):
  the whole history is encoded (`SASRec.encode_kv`), as without the cache.
- Restart (the window slides: the window would pass ``max_len`` items, or the caller's
  history dropped an item the window holds): the latest ``max_len // 2`` items are encoded
  afresh (positions from 0 again) and the next events append to them. The approximation:
  once past the window, a user is served from their latest ``max_len // 2`` to ``max_len``
  items instead of the latest ``max_len``; each restart costs a half-window encode, every
  other event one position (docs/decisions.md, "Incremental encoding").
- Model updates: the owner calls `clear` whenever the weights change (any snapshot or
  delta); a catalogue that only grows new rows changes no cached key or value.
- Memory: entries are dropped least recently used first to stay within ``max_bytes`` (their
  tensors' bytes); an entry's tensors grow by doubling up to ``max_len`` positions.

Kept per ``group`` (the worker's partition): `forget_groups` drops a group's users.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from rtrank.model.sasrec import SASRec
from rtrank.model.serving import length_groups, pad_batch
from rtrank.model.vocab import Vocabulary

MIN_CAPACITY = 8  # positions a new entry holds room for, at least


@dataclass(frozen=True)
class UserSequence:
    """One user's history as the caller keeps it (its latest items, oldest first)."""

    key: str  # the user
    group: int  # dropped with it by `EncodeCache.forget_groups` (the worker's partition)
    events: int  # items ever appended to the history (the history holds the latest)
    history: Sequence[str]


@dataclass
class CacheCounts:
    """What `EncodeCache.encode` did per user since the cache was made."""

    hits: int = 0  # the cached window extended by the new items
    misses: int = 0  # the whole history encoded
    restarts: int = 0  # the window slid: its latest half encoded afresh
    evictions: int = 0  # entries dropped to stay within the byte bound


@dataclass
class _Entry:
    events: int
    history: Sequence[str]
    span: int  # how many of the history's latest ids the window covers
    kv: torch.Tensor  # (capacity, kv_width): the window's positions in its first `length`
    length: int
    vec: torch.Tensor  # (D,) the user vector of the window
    group: int

    @property
    def nbytes(self) -> int:
        return (self.kv.numel() + self.vec.numel()) * self.kv.element_size()


class EncodeCache:
    """Per-user keys and values (see the module doc); one caller at a time.

    Args:
        max_bytes: bound on the tensors kept; 0 keeps nothing (every user a miss).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"the cache bound must be >= 0 bytes, not {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.counts = CacheCounts()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self) -> None:
        """Forget every user: the weights their keys and values came from changed."""
        self._entries.clear()
        self.bytes = 0

    def forget_groups(self, groups: set[int]) -> int:
        """Forget the users of ``groups``; returns how many were dropped."""
        gone = [k for k, e in self._entries.items() if e.group in groups]
        for key in gone:
            self.bytes -= self._entries.pop(key).nbytes
        return len(gone)

    @torch.no_grad()
    def encode(
        self, model: SASRec, vocab: Vocabulary, users: Sequence[UserSequence], max_group: int = 256
    ) -> torch.Tensor:
        """User vectors (B, D) for ``users``, in their order, as `encode_histories` of
        their histories' rows would give them within the window (see the module doc).

        ``model`` must be the one every cached entry came from (`clear` after a change)
        and count positions from the start; ``vocab`` maps its ids to rows.
        """
        max_len = model.config.max_len
        out = torch.empty(len(users), model.config.dim, device=model.device)
        fresh: list[tuple[int, list[int], int]] = []  # (user, rows to encode, span)
        steps: list[tuple[int, str, _Entry, list[int]]] = []  # (user, key, entry, new rows)
        for n, user in enumerate(users):
            entry = self._entries.pop(user.key, None)
            if entry is not None:
                self.bytes -= entry.nbytes
            appended = _appended(entry, user)
            if appended is None:
                self.counts.misses += 1
                fresh.append((n, vocab.rows(user.history), len(user.history)))
                continue
            rows = vocab.rows(appended)
            if entry.span + len(appended) > len(user.history) or entry.length + len(rows) > max_len:
                self.counts.restarts += 1
                keep = max_len // 2
                fresh.append((n, vocab.rows(user.history[-keep:]), min(keep, len(user.history))))
                continue
            self.counts.hits += 1
            entry.events, entry.history, entry.span = (
                user.events,
                user.history,
                entry.span + len(appended),
            )
            steps.append((n, user.key, entry, rows))
        entries = self._encode_fresh(model, users, fresh, out, max_group)
        entries += self._extend(model, steps, out)
        for entry_key, entry in entries:
            self._entries[entry_key] = entry
            self.bytes += entry.nbytes
        self._evict()
        return out

    def _encode_fresh(
        self,
        model: SASRec,
        users: Sequence[UserSequence],
        fresh: list[tuple[int, list[int], int]],
        out: torch.Tensor,
        max_group: int,
    ) -> list[tuple[str, _Entry]]:
        """Whole windows, in groups of similar length (`length_groups`)."""
        max_len = model.config.max_len
        made = []
        for group in length_groups([min(len(r), max_len) for _, r, _ in fresh], max_group):
            seqs = pad_batch([fresh[g][1] for g in group], max_len, model.device)
            vecs, kv = model.encode_kv(seqs)  # (b, D), (b, W, kv_width)
            out[torch.tensor([fresh[g][0] for g in group], device=model.device)] = vecs
            width = seqs.shape[1]
            for b, g in enumerate(group):
                n, rows, span = fresh[g]
                length = min(len(rows), max_len)
                store = kv.new_empty(_capacity(length, max_len), kv.shape[2])
                store[:length] = kv[b, width - length :]
                user = users[n]
                vec = vecs[b].clone()  # not a view: it would keep the whole batch's alive
                entry = _Entry(user.events, user.history, span, store, length, vec, user.group)
                made.append((user.key, entry))
        return made

    def _extend(
        self, model: SASRec, steps: list[tuple[int, str, _Entry, list[int]]], out: torch.Tensor
    ) -> list[tuple[str, _Entry]]:
        """The new rows of each cached user, one position per round, all users at once."""
        max_len = model.config.max_len
        for n, _, entry, _ in steps:
            out[n] = entry.vec  # a user whose new items are all unknown keeps its vector
        for depth in range(max((len(r) for *_, r in steps), default=0)):
            live = [(n, e, r[depth]) for n, _, e, r in steps if depth < len(r)]
            past = pad_sequence([e.kv[: e.length] for _, e, _ in live], batch_first=True)
            lengths = torch.tensor([e.length for _, e, _ in live], device=model.device)
            rows = torch.tensor([row for *_, row in live], device=model.device)
            vecs, new = model.extend(rows, past, lengths)  # (b, D), (b, kv_width)
            out[torch.tensor([n for n, *_ in live], device=model.device)] = vecs
            for b, (_, entry, _) in enumerate(live):
                if entry.length == entry.kv.shape[0]:
                    grown = entry.kv.new_empty(_capacity(entry.length + 1, max_len), new.shape[1])
                    grown[: entry.length] = entry.kv
                    entry.kv = grown
                entry.kv[entry.length] = new[b]
                entry.length += 1
                entry.vec = vecs[b].clone()
        return [(key, entry) for _, key, entry, _ in steps]

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._entries:
            _, entry = self._entries.popitem(last=False)
            self.bytes -= entry.nbytes
            self.counts.evictions += 1


def _appended(entry: _Entry | None, user: UserSequence) -> Sequence[str] | None:
    """The ids appended to ``entry``'s history to make ``user``'s, or None when ``user``'s
    history is not ``entry``'s with ``user.events - entry.events`` items appended."""
    if entry is None:
        return None
    new = user.events - entry.events
    kept = len(user.history) - new
    if new < 0 or kept < 0 or kept > len(entry.history):
        return None
    if list(user.history[:kept]) != list(entry.history[len(entry.history) - kept :]):
        return None
    return user.history[kept:]


def _capacity(length: int, max_len: int) -> int:
    """Room for ``length`` positions: the next power of two, at least `MIN_CAPACITY`, at
    most ``max_len``."""
    return min(max_len, max(MIN_CAPACITY, 1 << max(0, length - 1).bit_length()))
