"""Each recently active user's keys and values, kept so that the next event encodes one new
position per block (`SASRec.extend`) instead of the user's whole window.

    cache = EncodeCache(max_bytes=256 << 20)
    vecs = cache.encode(model, vocab, [UserSequence("u1", 3, events, history), ...])
    cache.clear()             # the model's weights changed
    cache.forget_groups({3})  # the users of partition 3 are served elsewhere now
    cache.forget_users(["u1"])  # u1 asked to be forgotten

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
- Model updates: the owner calls `clear` when the transformer's weights change (a snapshot,
  a delta with dense weights), and `forget_items` for a delta of item rows only: the users
  whose window holds a changed row, and those whose window skipped ids unknown then (a
  delta may add or reassign ids), are dropped; the others' keys and values are the new
  model's too. A catalogue grown with new rows only changes no cached key or value.
- Memory: every user holds one slot of ``max_len`` positions (`SASRec.kv_width` floats
  and the item's row each) and a vector, in one table grown by doubling up to
  ``max_bytes``; past that, the least recently used user's slot is taken. One table, not
  a tensor per user: a batch's cached positions are gathered, and its new ones stored, in
  one indexing operation each, where per-user tensors cost several tensor calls per user,
  more than the model's math for a short history (docs/decisions.md, "Incremental
  encoding"). A warm call gathers its users' positions into one more buffer, kept
  between calls and outside ``max_bytes``: up to ``max_group`` windows (25 MB at the
  defaults).

Kept per ``group`` (the worker's partition): `forget_groups` drops a group's users.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rtrank.model.sasrec import SASRec
from rtrank.model.serving import length_groups, pad_batch
from rtrank.model.vocab import Vocabulary

FIRST_SLOTS = 64  # users the table holds room for at first (then doubled as needed)


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
    evictions: int = 0  # users dropped to stay within the byte bound


@dataclass
class _Entry:
    events: int
    history: Sequence[str]
    span: int  # how many of the history's latest ids the window covers
    slot: int  # its row of the table: the window's positions in its first `length` columns
    length: int
    group: int
    unknown: bool = False  # ids of the window the vocabulary did not know (not encoded)


class EncodeCache:
    """Per-user keys and values (see the module doc); one caller at a time.

    Args:
        max_bytes: bound on the table of keys, values and vectors; below one user's slot,
            nothing is kept (every user a miss).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"the cache bound must be >= 0 bytes, not {max_bytes}")
        self.max_bytes = max_bytes
        self.counts = CacheCounts()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._kv: torch.Tensor | None = None  # (slots, max_len, kv_width)
        self._vecs: torch.Tensor | None = None  # (slots, D)
        self._rows: torch.Tensor | None = None  # (slots, max_len) the items, 0 past `length`
        self._free: list[int] = []  # slots of the table no user holds
        self._gather: torch.Tensor | None = None  # `_gathered`'s buffer, kept between calls

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def bytes(self) -> int:
        """Bytes of the table as allocated (at most ``max_bytes``)."""
        if self._kv is None or self._vecs is None or self._rows is None:
            return 0
        return sum(t.numel() * t.element_size() for t in (self._kv, self._vecs, self._rows))

    def clear(self) -> None:
        """Forget every user: the weights their keys and values came from changed."""
        self._entries.clear()
        self._kv = self._vecs = self._rows = self._gather = None
        self._free = []

    def forget_items(self, rows: torch.Tensor) -> int:
        """Forget the users whose window holds one of the item ``rows`` (an update changed
        their embeddings, not the transformer's weights), and those whose window has ids
        the vocabulary did not know then (an update may have added or reassigned them:
        encoded whole now, they would be read). Returns how many were dropped."""
        if not self._entries or self._rows is None:
            return 0
        held = torch.isin(self._rows, rows.to(self._rows.device)).any(1).tolist()  # per slot
        gone = [k for k, e in self._entries.items() if held[e.slot] or e.unknown]
        for key in gone:
            self._free.append(self._entries.pop(key).slot)
        return len(gone)

    def forget_groups(self, groups: set[int]) -> int:
        """Forget the users of ``groups``; returns how many were dropped."""
        gone = [k for k, e in self._entries.items() if e.group in groups]
        for key in gone:
            self._free.append(self._entries.pop(key).slot)
        return len(gone)

    def forget_users(self, keys: Sequence[str]) -> int:
        """Forget the users ``keys`` (forgotten at their request); returns how many it held."""
        gone = [k for k in keys if k in self._entries]
        for key in gone:
            self._free.append(self._entries.pop(key).slot)
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
        self._fit(model)
        max_len = model.config.max_len
        out = torch.empty(len(users), model.config.dim, device=model.device)
        fresh: list[tuple[int, list[int], int, int]] = []  # (user, rows, span, slot)
        steps: list[tuple[int, _Entry, list[int]]] = []  # (user, entry, rows to append)
        batch: dict[str, _Entry] = {}  # this call's users, out of the LRU order meanwhile
        for n, user in enumerate(users):
            if user.key in batch:  # asked twice in one call: served, not kept
                self.counts.misses += 1
                fresh.append((n, vocab.rows(user.history), len(user.history), -1))
                continue
            entry = self._entries.pop(user.key, None)
            appended = _appended(entry, user)
            rows = [] if appended is None else vocab.rows(appended)
            if (
                appended is None
                or entry.span + len(appended) > len(user.history)
                or (entry.length + len(rows) > max_len)
            ):
                if appended is None:
                    self.counts.misses += 1
                    span = len(user.history)
                else:
                    self.counts.restarts += 1
                    span = min(max_len // 2, len(user.history))
                rows = vocab.rows(user.history[len(user.history) - span :])
                slot = entry.slot if entry is not None else self._take_slot()
                fresh.append((n, rows, span, slot))
                if slot >= 0:
                    batch[user.key] = _Entry(
                        user.events, user.history, span, slot, 0, user.group, len(rows) < span
                    )
                continue
            self.counts.hits += 1
            entry.events, entry.history = user.events, user.history
            entry.span += len(appended)
            entry.unknown |= len(rows) < len(appended)
            steps.append((n, entry, rows))
            batch[user.key] = entry
        self._encode_fresh(model, fresh, out, max_group, batch, users)
        self._extend(model, steps, out, max_group)
        self._entries.update(batch)
        return out

    def _encode_fresh(
        self,
        model: SASRec,
        fresh: list[tuple[int, list[int], int, int]],
        out: torch.Tensor,
        max_group: int,
        batch: dict[str, _Entry],
        users: Sequence[UserSequence],
    ) -> None:
        """Whole windows, in groups of similar length (`length_groups`), stored in their
        users' slots (those that got one)."""
        max_len = model.config.max_len
        for group in length_groups([min(len(r), max_len) for _, r, _, _ in fresh], max_group):
            seqs = pad_batch([fresh[g][1] for g in group], max_len, model.device)
            vecs, kv = model.encode_kv(seqs)  # (b, D), (b, W, kv_width)
            out[torch.tensor([fresh[g][0] for g in group], device=model.device)] = vecs
            width = seqs.shape[1]
            for b, g in enumerate(group):
                n, rows, _, slot = fresh[g]
                if slot < 0:
                    continue
                length = min(len(rows), max_len)
                self._kv[slot, :length] = kv[b, width - length :]
                self._vecs[slot] = vecs[b]
                self._rows[slot, :length] = seqs[b, width - length :]
                self._rows[slot, length:] = 0
                batch[users[n].key].length = length

    def _extend(
        self,
        model: SASRec,
        steps: list[tuple[int, _Entry, list[int]]],
        out: torch.Tensor,
        max_group: int,
    ) -> None:
        """The new rows of each cached user, one position per round, up to ``max_group``
        users at once: their positions gathered from the table in one copy, the new
        position's keys and values stored back in one."""
        if not steps:
            return
        device = model.device
        slots = torch.tensor([e.slot for _, e, _ in steps], device=device)
        # a user whose new items are all unknown keeps its vector
        out[torch.tensor([n for n, _, _ in steps], device=device)] = self._vecs[slots]
        for depth in range(max(len(r) for _, _, r in steps)):
            live = [(n, e, r[depth]) for n, e, r in steps if depth < len(r)]
            live.sort(key=lambda step: step[1].length)  # each part gathered to its longest
            for i in range(0, len(live), max_group):
                part = live[i : i + max_group]
                where = torch.tensor([e.slot for _, e, _ in part], device=device)
                lengths = torch.tensor([e.length for _, e, _ in part], device=device)
                width = max(e.length for _, e, _ in part) + 1  # the new position last
                # (b, width, kv_width): past each user's length, finite leftovers, masked
                past = self._gathered(where, width)
                rows = torch.tensor([r for *_, r in part], device=device)
                vecs = model.extend(rows, past, lengths)  # (b, D); fills past[:, -1]
                self._kv[where, lengths] = past[:, -1]
                self._vecs[where] = vecs
                self._rows[where, lengths] = rows
                out[torch.tensor([n for n, _, _ in part], device=device)] = vecs
                for _, entry, _ in part:
                    entry.length += 1

    def _gathered(self, slots: torch.Tensor, width: int) -> torch.Tensor:
        """The first ``width`` positions of the table's ``slots`` (b, width, kv_width), in
        a buffer that the next call overwrites.

        ``index_select`` into a kept buffer, not indexing: indexing the sliced table
        gathered at a third of the speed of a copy, and a new buffer per call paid its
        pages again, most of a warm call's time at a full window (docs/decisions.md,
        "Incremental encoding"). The buffer holds whole windows, so that windows growing
        from call to call do not make it again.
        """
        windows = len(slots) * self._kv[0].numel()
        if self._gather is None or self._gather.numel() < windows:
            self._gather = self._kv.new_empty(windows)
        shape = (len(slots), width, self._kv.shape[2])
        out = self._gather[: shape[0] * shape[1] * shape[2]].view(shape)
        return torch.index_select(self._kv[:, :width], 0, slots, out=out)

    def _fit(self, model: SASRec) -> None:
        """A table for ``model``'s shapes and device: an empty one at first, and in place
        of one made for another model (`clear` was due)."""
        kv = self._kv
        shape = (model.config.max_len, model.kv_width)
        if kv is not None and (tuple(kv.shape[1:]) != shape or kv.device != model.device):
            self.clear()
        if self._kv is None:
            self._kv = torch.zeros(0, *shape, device=model.device)
            self._vecs = torch.zeros(0, model.config.dim, device=model.device)
            self._rows = torch.zeros(0, shape[0], dtype=torch.long, device=model.device)

    def _take_slot(self) -> int:
        """A free slot of the table, grown (doubled, within ``max_bytes``) or taken from the
        least recently used user; -1 when the table cannot hold one user."""
        if self._free:
            return self._free.pop()
        if self._grow():
            return self._free.pop()
        if self._entries:
            _, entry = self._entries.popitem(last=False)
            self.counts.evictions += 1
            return entry.slot
        return -1

    def _grow(self) -> bool:
        """Double the table's slots (at first `FIRST_SLOTS`) within ``max_bytes``; False
        when not one more slot fits."""
        tables = (self._kv, self._vecs, self._rows)
        if any(t is None for t in tables):
            return False
        had = tables[0].shape[0]
        slot_bytes = sum(t.shape[1:].numel() * t.element_size() for t in tables)
        slots = min(max(FIRST_SLOTS, 2 * had), self.max_bytes // slot_bytes)
        if slots <= had:
            return False
        self._kv, self._vecs, self._rows = (
            torch.cat([t, t.new_zeros(slots - had, *t.shape[1:])]) for t in tables
        )
        self._free += range(slots - 1, had - 1, -1)
        return True


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
