"""SASRec: a causal self-attention sequence model over item ids (Kang & McAuley, 2018).

One trunk (`SASRec.hidden`) serves training (`forward`, next-item loss at every non-pad
position) and serving (`encode` -> user vector, `top_k` over the whole catalogue).

Conventions:

- Embedding row 0 is padding. Sequences are LEFT-padded: the latest item is in the last
  column; pad keys are masked out of attention, so a history gets the same output whatever
  the batch width. Batched and one-by-one results agree up to float rounding.
- Positions (``SASRecConfig.positions``): ``from_start`` counts them from the oldest item
  of the window read (position 0), so appending an item shifts no earlier position, and
  with causal attention no earlier output changes either: a server can keep each user's
  per-layer keys and values and encode the next item alone (`SASRec.encode_kv`,
  `SASRec.extend`, `rtrank.model.encode_cache`). ``from_end`` (latest item = position 0)
  is the scheme of checkpoints written before it; they load as ``from_end`` and serve
  without that cache (docs/decisions.md, "Positions counted from the window's start").
- Item scores are dot products with the (tied) item embeddings.

Loss: sampled softmax by default, 4,096 uniform negatives shared by the batch (accidental
hits masked), cross-entropy at every non-pad position: on Games it makes the same
validation progress per epoch as the full softmax for a fifth of the CPU time, and far more
than the paper's one-negative BCE (docs/decisions.md). "ce" (full softmax over the
catalogue, only at non-pad positions) stays available: it may suit a GPU, where the
catalogue product is cheap (not measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from itertools import chain

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOSSES = ("ce", "sampled")
POSITIONS = ("from_start", "from_end")
GROW_SAMPLE_ROWS = 2048  # item rows `SASRec.grow` estimates new rows' statistics from


@dataclass(frozen=True)
class SASRecConfig:
    """Hyperparameters; `asdict` of this travels in checkpoints."""

    num_items: int  # embedding rows incl. padding row 0 (= len(Vocabulary))
    max_len: int = 50  # most recent items read; Amazon users average ~9 actions
    dim: int = 128  # best of 64/128 by validation NDCG@10 on Games (0.552 -> 0.557)
    num_blocks: int = 2  # two blocks is where the paper's gains stopped
    num_heads: int = 1  # one head did as well as more in the paper
    dropout: float = 0.5  # sparse data (Games) overfits fast; the paper used 0.5
    loss: str = "sampled"  # "sampled": uniform shared negatives; "ce": full softmax (5x slower)
    num_negatives: int = 4096  # negatives shared by a batch when loss == "sampled"
    positions: str = "from_start"  # appending shifts no position (see module doc); "from_end": old

    def __post_init__(self) -> None:
        if self.num_items < 2:
            raise ValueError("num_items counts padding: it must be at least 2")
        if self.dim % self.num_heads:
            raise ValueError("dim must be divisible by num_heads")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, not {self.positions!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SASRecConfig:
        """The config a checkpoint or snapshot stored: unknown keys are ignored, and one
        written before ``positions`` existed counted them from the end (``from_end``).

        Raises:
            TypeError, ValueError: a required field is missing or a value is invalid.
        """
        known = {f.name for f in fields(cls)}
        return cls(**{"positions": "from_end", **{k: v for k, v in data.items() if k in known}})


class Dropout(nn.Module):
    """Inverted dropout: each element kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``, as `nn.Dropout`.

    On CPU the masks are slices, at random offsets, of a pool of ``POOL`` scaled masks
    drawn once per module: drawing ``rand_like(x)`` per call was most of a call's time and
    a large share of the online trainer's (docs/benchmarks.md, "Component timings").
    Within a mask the elements are independent. Two
    calls may take overlapping parts of the pool, but shifted against each other: a unit
    gets the same bit twice only when the offsets coincide. Larger inputs, and other
    devices (where drawing is cheap and an offset would cost a synchronisation), draw
    fresh masks.
    Attention weights keep `F.scaled_dot_product_attention`'s own dropout.
    """

    POOL = 1 << 20

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self._pool: torch.Tensor | None = None  # not a buffer: never in a checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        n = x.numel()
        if x.device.type != "cpu" or n > self.POOL // 2:
            return x * ((torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p)))
        if self._pool is None or self._pool.dtype != x.dtype:
            keep = torch.rand(self.POOL) >= self.p
            self._pool = keep.to(x.dtype) * (1.0 / (1.0 - self.p))
        start = int(torch.randint(0, self.POOL - n + 1, ()))
        return x * self._pool[start : start + n].view_as(x)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.dropout = cfg.dropout
        self.resid_drop = Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        kv: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attention output at every position, or (``last_only``) at the last one only
        (B, 1, D): serving needs no other, and then no other query is computed. ``kv``: a
        list to append this layer's keys and values (B, L, D) to."""
        B, L, D = x.shape
        if last_only:
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -1:], w[:D], b[:D])  # (B, 1, D)
            k, v = F.linear(x, w[D:], b[D:]).split(D, dim=2)
            mask = mask[:, :, -1:, :]  # (B, 1, 1, L)
        else:
            q, k, v = self.qkv(x).split(D, dim=2)
        if kv is not None:
            kv += (k, v)
        return self.resid_drop(self.proj(self._attend(q, k, v, mask)))

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Output (B, 1, D) of one new position ``x`` (B, 1, D) attending the cached keys
        and values (B, S, D) that ``mask`` (B, 1, 1, S) allows; the new position's own key
        and value are written into the last slot of ``keys``/``values`` first (in place:
        no copy of the cache)."""
        D = x.shape[2]
        q, k, v = self.qkv(x).split(D, dim=2)
        keys[:, -1:], values[:, -1:] = k, v
        return self.resid_drop(self.proj(self._attend(q, keys, values, mask)))

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """(B, T, D) queries over (B, S, D) keys and values -> (B, T, D)."""
        B, D = q.shape[0], q.shape[2]
        # (B, T, D) -> (B, nh, T, hs)
        q, k, v = (
            t.view(B, t.shape[1], self.num_heads, D // self.num_heads).transpose(1, 2)
            for t in (q, k, v)
        )
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return y.transpose(1, 2).contiguous().view(B, q.shape[2], D)  # (B, nh, T, hs) -> (B, T, D)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + ffn(ln(x))."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.ffn = nn.Sequential(
            nn.Linear(cfg.dim, cfg.dim),
            nn.ReLU(),
            Dropout(cfg.dropout),
            nn.Linear(cfg.dim, cfg.dim),
            Dropout(cfg.dropout),
        )

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        kv: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, L, D) -> (B, L, D), or (B, 1, D) for the last position with ``last_only``;
        ``kv`` collects the attention's keys and values (`CausalSelfAttention.forward`)."""
        a = self.attn(self.ln1(x), mask, last_only, kv)
        x = (x[:, -1:] if last_only else x) + a
        return x + self.ffn(self.ln2(x))

    def step(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """`forward` for one new position (B, 1, D) over cached keys and values, its own
        written into their last slot (`CausalSelfAttention.step`)."""
        x = x + self.attn.step(self.ln1(x), keys, values, mask)
        return x + self.ffn(self.ln2(x))


class SASRec(nn.Module):
    """Self-attentive sequential recommender.

    Args:
        config: hyperparameters; ``config.num_items`` rows in the item embedding.
    """

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__()
        self.config = config
        D = config.dim
        self.item_emb = nn.Embedding(config.num_items, D, padding_idx=0)
        self.pos_emb = nn.Embedding(config.max_len, D)
        self.emb_drop = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.num_blocks))
        self.ln_f = nn.LayerNorm(D)
        self._item_room: torch.Tensor | None = None  # rows `grow` may fill (not a buffer)
        # Small init (as nanoGPT): with std D**-0.5 the random embeddings took epochs to
        # unlearn at lr 1e-3 (valid NDCG@10 0.30 -> 0.32 in 4 epochs vs 0.35 after one).
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    @property
    def device(self) -> torch.device:
        return self.item_emb.weight.device

    def hidden(
        self,
        seqs: torch.Tensor,
        item_weight: torch.Tensor | None = None,
        last_only: bool = False,
        kv: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Runs the trunk over left-padded rows ``seqs`` (B, L); returns (B, L', D).

        Histories longer than ``max_len`` are cut to their latest ``max_len`` items
        (L' = min(L, max_len)). Outputs at pad positions are meaningless. ``item_weight``
        replaces the item table (rows of ``seqs`` index it; its row 0 must be padding).
        ``last_only``: the last block computes the last position only (L' = 1), which is
        all a user vector needs (and a third faster: `rtrank.model.throughput`). ``kv``: a
        list to which each block appends its keys and values (B, L', D), in block order.
        """
        seqs = seqs[:, -self.config.max_len :]
        B, L = seqs.shape
        keep = seqs != 0  # (B, L)
        if self.config.positions == "from_start":
            # the oldest item is 0 whatever the padding: (B, L), pads at 0 (their outputs unused)
            pos = (keep.cumsum(1) - 1).clamp_min(0)
        else:
            pos = torch.arange(L - 1, -1, -1, device=seqs.device)  # (L,): latest item 0
        items = self.item_emb(seqs) if item_weight is None else F.embedding(seqs, item_weight)
        x = items * math.sqrt(self.config.dim) + self.pos_emb(pos)
        x = self.emb_drop(x) * keep.unsqueeze(-1)
        causal = torch.ones(L, L, dtype=torch.bool, device=seqs.device).tril()
        # query i attends key j when j <= i and j is an item; a pad query attends itself
        # so that no attention row is empty (an empty row would give NaN).
        mask = (causal & keep[:, None, :]) | torch.eye(L, dtype=torch.bool, device=seqs.device)
        mask = mask.unsqueeze(1)  # (B, 1, L, L): broadcast over heads
        for n, block in enumerate(self.blocks, 1):
            x = block(x, mask, last_only and n == len(self.blocks), kv)
        return self.ln_f(x)

    def forward(
        self, seqs: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next-item logits and, with ``targets``, the training loss.

        Args:
            seqs: (B, L) left-padded item rows.
            targets: (B, L) the item that follows each position (0 = no target).

        Returns:
            Without targets: (logits (B, num_items) for the latest position, None).
            With targets: (logits (N, C) at the N non-pad target positions, mean loss);
            C = num_items for "ce", 1 + num_negatives for "sampled" (column 0 = target).
        """
        h = self.hidden(seqs)
        weight = self.item_emb.weight
        if targets is None:
            logits = h[:, -1, :] @ weight.T  # (B, V)
            logits[:, 0] = float("-inf")
            return logits, None
        targets = targets[:, -h.shape[1] :]
        at = targets != 0
        logits, labels = self.loss_logits(h[at], targets[at])
        return logits, F.cross_entropy(logits, labels)

    def loss_logits(
        self,
        hs: torch.Tensor,
        tgt: torch.Tensor,
        item_weight: torch.Tensor | None = None,
        negs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of the training loss (the configured ``loss``) for outputs
        ``hs`` (N, D) whose next items are ``tgt`` (N,); offline and online training share it.

        "ce": (N, rows), labels = tgt. "sampled": (N, 1 + num_negatives), the target in
        column 0 (labels = 0) and negatives drawn uniformly, shared by the N rows, with
        accidental hits masked. ``item_weight`` replaces the item table and ``negs`` the
        drawn negatives (both index it), so a caller can train on a subset of the rows.
        """
        weight = self.item_emb.weight if item_weight is None else item_weight
        if self.config.loss == "ce":
            logits = hs @ weight.T  # (N, V)
            logits[:, 0] = float("-inf")
            return logits, tgt
        if negs is None:
            negs = self.sample_negatives(hs.device)
        pos_logit = (hs * weight[tgt]).sum(-1, keepdim=True)  # (N, 1)
        neg_logits = hs @ weight[negs].T  # (N, n)
        neg_logits = neg_logits.masked_fill(negs[None, :] == tgt[:, None], float("-inf"))
        logits = torch.cat([pos_logit, neg_logits], dim=1)  # (N, 1 + n)
        return logits, torch.zeros(len(tgt), dtype=torch.long, device=hs.device)

    def sample_negatives(
        self, device: torch.device | None = None, count: int | None = None
    ) -> torch.Tensor:
        """``count`` (default ``num_negatives``) item rows drawn uniformly (padding never),
        shared by a batch."""
        rows = self.item_emb.weight.shape[0]
        return torch.randint(1, rows, (count or self.config.num_negatives,), device=device)

    # --- serving ---------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """User vectors (B, D) for left-padded histories ``seqs`` (B, L), in eval mode.

        A module in training mode is put in eval mode for the call and back afterwards; one
        already in eval mode (a server's) is left alone, since switching walks every
        submodule (a fifth of a small served batch's time).
        """
        if not self.training:
            return self.hidden(seqs.to(self.device), last_only=True)[:, -1, :]
        self.eval()
        try:
            return self.hidden(seqs.to(self.device), last_only=True)[:, -1, :]
        finally:
            self.train()

    @property
    def kv_width(self) -> int:
        """Floats one cached position holds: keys and values of every block (`encode_kv`)."""
        return 2 * self.config.num_blocks * self.config.dim

    @torch.no_grad()
    def encode_kv(self, seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode`'s user vectors (B, D), and what `extend` needs to append to them: each
        position's keys and values, (B, L', kv_width): block 0's keys, its values, block
        1's keys, ... (pad columns hold garbage). A served (eval mode) model with positions
        ``from_start`` only: with ``from_end`` an appended item moves every position.

        Raises:
            ValueError: the model counts positions from the end, or is in training mode.
        """
        self._check_incremental()
        kv: list[torch.Tensor] = []
        h = self.hidden(seqs.to(self.device), last_only=True, kv=kv)
        return h[:, -1, :], torch.cat(kv, dim=2)

    @torch.no_grad()
    def extend(self, rows: torch.Tensor, past: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """User vectors (B, D) after appending item ``rows[b]`` (B,) to the ``lengths[b]``
        (B,) positions of user b cached in ``past[b, :lengths[b]]`` (B, P + 1, kv_width),
        whose last column ``past[:, P]`` receives the new position's keys and values (in
        place: the cache is not copied again). Each user's result is `encode_kv`'s for its
        whole window (to float rounding) when ``past`` came from `encode_kv` and earlier
        `extend` calls on the same weights, and ``lengths[b] < max_len``.

        Raises:
            ValueError: as `encode_kv`.
        """
        self._check_incremental()
        S = past.shape[1]  # P + 1
        D = self.config.dim
        rows, lengths = rows.to(self.device), lengths.to(self.device)
        x = self.item_emb(rows)[:, None, :] * math.sqrt(D) + self.pos_emb(lengths)[:, None, :]
        # each user attends its own cached positions and the new one (the last column)
        cols = torch.arange(S, device=self.device)
        mask = (cols[None, :] < lengths[:, None]) | (cols[None, :] == S - 1)  # (B, S)
        mask = mask[:, None, None, :]  # (B, 1, 1, S): broadcast over heads
        for n, block in enumerate(self.blocks):
            keys = past[:, :, 2 * n * D : (2 * n + 1) * D]  # (B, S, D), a view
            values = past[:, :, (2 * n + 1) * D : (2 * n + 2) * D]
            x = block.step(x, keys, values, mask)
        return self.ln_f(x)[:, 0, :]

    def _check_incremental(self) -> None:
        if self.config.positions != "from_start":
            raise ValueError("positions counted from the end: appending an item moves them all")
        if self.training:
            raise ValueError("incremental encoding serves an eval-mode model")

    @torch.no_grad()
    def item_matrix(self) -> torch.Tensor:
        """The item table as a contiguous (D, V) copy, for `scores` and `top_k` to serve from.

        The product with this copy is the same as with the transposed view of the table,
        but BLAS runs it far faster (docs/benchmarks.md, "Component timings"). A server
        keeps one and makes a new one whenever the table
        changes (a model update, a grown catalogue); a stale copy scores stale rows.
        """
        return self.item_emb.weight.detach().T.contiguous()  # (D, V)

    @torch.no_grad()
    def scores(
        self, user_vecs: torch.Tensor, item_matrix: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Scores (B, num_items) of every row for user vectors (B, D); padding is -inf.

        ``item_matrix``: this model's `item_matrix()`, when the caller keeps one.
        """
        items = self.item_emb.weight.T if item_matrix is None else item_matrix  # (D, V)
        s = user_vecs.to(self.device) @ items  # (B, V)
        s[:, 0] = float("-inf")
        return s

    @torch.no_grad()
    def top_k(
        self,
        user_vecs: torch.Tensor,
        k: int,
        exclude: list[list[int]] | None = None,
        item_matrix: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` rows of the whole catalogue per user.

        Args:
            user_vecs: (B, D) from `encode`.
            k: list length; capped at the number of item rows.
            exclude: per user, rows never to return (e.g. items already seen).
                Padding row 0 is always excluded.
            item_matrix: this model's current `item_matrix()`, when the caller keeps one.

        Returns:
            (scores (B, k) float, rows (B, k) long), best first. When exclusions leave
            fewer than k rows, the tail has score -inf.
        """
        s = self.scores(user_vecs, item_matrix)
        exclude_rows(s, exclude)
        k = max(0, min(k, s.shape[1] - 1))
        return torch.topk(s, k, dim=1)

    @torch.no_grad()
    def typical_rows(self, count: int) -> torch.Tensor:
        """``count`` new item rows (count, D), drawn from a normal with the per-dimension
        mean and std of the existing item rows (at most ``GROW_SAMPLE_ROWS`` of them, evenly
        spaced): a new item starts looking like a typical item rather than an outlier."""
        old = self.item_emb.weight
        items = old[1:] if old.shape[0] > 2 else old  # one item row: padding joins the stats
        items = items[:: max(1, items.shape[0] // GROW_SAMPLE_ROWS)]
        n = items.shape[0]
        mean = items.mean(0)
        # E[x^2] - E[x]^2: one pass of row sums, where `std(0)` strides down the columns
        var = (items.square().mean(0) - mean.square()).clamp_min(0) * (n / (n - 1))
        return mean + var.sqrt() * torch.randn(
            count, old.shape[1], device=old.device, dtype=old.dtype
        )

    @torch.no_grad()
    def grow(self, num_rows: int) -> None:
        """Enlarges the item embedding to ``num_rows`` rows; existing rows are kept.

        New rows are `typical_rows`. The parameter object is replaced: rebuild optimizers
        afterwards.

        The online trainer grows nearly every step on a stream with new items, so growth
        must be cheap (docs/decisions.md): the statistics come from at most
        ``GROW_SAMPLE_ROWS`` evenly spaced rows, not the whole table, and the table lives in
        the leading rows of a larger tensor with room for an eighth more rows, so that most
        growths write the new rows in place instead of copying the table into fresh memory.
        The replaced parameter is a view of the same rows, so it sees the new one's updates.
        """
        old = self.item_emb.weight
        n_old, D = old.shape
        if num_rows <= n_old:
            if num_rows < n_old:
                raise ValueError(f"cannot shrink the embedding from {n_old} to {num_rows}")
            return
        fresh = self.typical_rows(num_rows - n_old)
        room = self._item_room
        # a table moved, cast or replaced since no longer starts at the room's first row
        if room is None or room.data_ptr() != old.data_ptr() or room.shape[0] < num_rows:
            room = torch.empty(num_rows + num_rows // 8, D, device=old.device, dtype=old.dtype)
            room[:n_old] = old
            self._item_room = room
        room[n_old:num_rows] = fresh
        # from the rows themselves: a new nn.Embedding would first draw all its rows afresh
        self.item_emb = nn.Embedding.from_pretrained(room[:num_rows], freeze=False, padding_idx=0)
        self.config = replace(self.config, num_items=num_rows)


def table_rows(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``table[rows]`` (*rows.shape, D) for a (V, D) ``table``: through ``index_select``,
    which copies rows at several times the speed of indexing on a CPU."""
    return table.index_select(0, rows.reshape(-1)).view(*rows.shape, table.shape[1])


def exclude_rows(scores: torch.Tensor, exclude: Sequence[Sequence[int]] | None) -> None:
    """Sets ``scores[b, r]`` (B, V) to -inf for every row r in ``exclude[b]``, in place."""
    if not exclude:
        return
    if len(exclude) != scores.shape[0]:
        raise ValueError(f"exclude has {len(exclude)} lists for {scores.shape[0]} users")
    users, rows = listed_rows(exclude)
    if len(rows):
        scores[users.to(scores.device), rows.to(scores.device)] = float("-inf")


def listed_rows(lists: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Every row of ``lists`` with the index of its list: (list indices, rows), two int64
    tensors of the rows' total length, in order.

    Made through numpy, not `torch.tensor` of Python lists, which converts element by
    element: a served batch excludes each user's seen items, up to ``RTRANK_SEEN_LEN`` of
    them, and that conversion was most of a long-seen batch's exclusion (docs/benchmarks.md,
    "Users who have seen many items").
    """
    counts = [len(rows) for rows in lists]
    rows = np.fromiter(chain.from_iterable(lists), dtype=np.int64, count=sum(counts))
    users = np.repeat(np.arange(len(lists), dtype=np.int64), counts)
    return torch.from_numpy(users), torch.from_numpy(rows)
