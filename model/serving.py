"""The small helpers a scorer needs around `SASRec.encode` / `SASRec.top_k`.

Typical use from the stream (one micro-batch)::

    device = resolve_device("auto")
    ckpt = load_checkpoint(path, device)
    index = ItemIndex(ckpt.model, shortlist=resolve_shortlist("auto", device))
    vecs = encode_histories(ckpt.model, [ckpt.vocab.rows(h) for h in histories])
    scores, rows = index.top_k(vecs, 10, exclude=seen_rows)
    items = [[ckpt.vocab.item(r) for r in rr] for rr in rows.tolist()]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rtrank.model.sasrec import SASRec, exclude_rows, table_rows


def resolve_device(name: str = "auto") -> torch.device:
    """Turns ``auto``/``cpu``/``cuda``/``cuda:N`` into a device; ``auto`` prefers CUDA.

    Raises:
        ValueError: for an unknown name, or a CUDA device when CUDA is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from e
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: only {torch.cuda.device_count()} CUDA devices")
    elif device.type != "cpu":
        raise ValueError(f"unsupported device {name!r}: use auto, cpu, cuda or cuda:N")
    return device


SHORTLIST_SETTINGS = ("auto", "on", "off")
SHORTLIST_MARGIN = 16  # rows a bfloat16 shortlist keeps beyond the k it must return
SHORT_USERS_STEP = 16  # the bfloat16 pass's users, rounded up to a multiple of this
SHORT_ITEMS_STEP = 4096  # and its catalogue's rows (`ItemIndex`: one kernel per shape)
TOP_K_GROUPS_OF = 16  # columns per group when `grouped_top_k` ranks the groups' best first


def resolve_shortlist(name: str, device: torch.device) -> bool:
    """Whether `ItemIndex` takes a bfloat16 shortlist first: ``on``, ``off``, or ``auto`` =
    where the device runs bfloat16 matrix products natively (CUDA with bf16; a CPU with
    AVX-512 BF16 or AMX), since elsewhere they are emulated and slower than float32.

    Raises:
        ValueError: ``name`` is not one of `SHORTLIST_SETTINGS`.
    """
    if name not in SHORTLIST_SETTINGS:
        raise ValueError(f"unknown shortlist setting {name!r}: use one of {SHORTLIST_SETTINGS}")
    if name != "auto":
        return name == "on"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class ItemIndex:
    """The item table as a server keeps it to find each user's best items in the catalogue.

    Built from the model's current table, and built again whenever the table changes (a
    model update, a grown catalogue): a stale index scores stale rows.

    With ``shortlist``, a user's items are found in two passes: the whole catalogue scored
    with a bfloat16 copy of the table, its best ``k + SHORTLIST_MARGIN`` rows kept, and
    those rescored in float32, of which the best ``k`` are returned: the float32 lists, in
    about 60% of the time (docs/decisions.md, "Grouped encoding, bf16 shortlist"). On a
    CPU the copy is held in oneDNN's own layout for a linear layer's weights, made once
    per copy, which its products read a fifth faster than the plain layout
    (docs/decisions.md, "The bfloat16 table in oneDNN's layout").

    On a CPU, oneDNN makes a bfloat16 matrix product's kernel the first time it meets its
    shape, which costs a batch many times its product; the bfloat16 pass therefore runs in
    few shapes (users rounded up to a multiple of `SHORT_USERS_STEP`, the catalogue to one
    of `SHORT_ITEMS_STEP`, the extra rows and columns zeros and never returned), and
    `warm_up` makes them before the first batch needs them (docs/decisions.md, "One
    bfloat16 shape per batch size"). Warming up runs the whole product once per shape:
    0.1 s at 23.7k items, seconds at a million.
    """

    def __init__(self, model: SASRec, shortlist: bool) -> None:
        self.model = model
        self.matrix = model.item_matrix()  # (D, V) float32
        # (V rounded up, D) bfloat16: the table's rows, then zero rows
        self.short = _short_table(self.matrix, SHORT_ITEMS_STEP) if shortlist else None

    @torch.no_grad()
    def warm_up(self, max_users: int) -> None:
        """Run the bfloat16 pass once in each shape a call of up to ``max_users`` users
        uses, so that no batch waits for a kernel to be made; nothing without a
        shortlist."""
        if self.short is None:
            return
        most = _round_up(max_users, SHORT_USERS_STEP)
        for users in range(SHORT_USERS_STEP, most + 1, SHORT_USERS_STEP):
            _rough_scores(torch.zeros(users, self.short.shape[1], dtype=torch.bfloat16), self.short)

    @torch.no_grad()
    def top_k(
        self, user_vecs: torch.Tensor, k: int, exclude: list[list[int]] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`SASRec.top_k`'s contract: (scores (B, k), rows (B, k)), best first, padding and
        ``exclude`` never returned (a -inf tail when they leave fewer than k rows)."""
        rows = self.matrix.shape[1] - 1  # padding is never a candidate
        wide = min(k + SHORTLIST_MARGIN, rows)
        if self.short is None or wide <= k:
            return self.model.top_k(user_vecs, k, exclude, self.matrix)
        vecs = user_vecs.to(self.matrix.device)
        users = vecs.shape[0]
        padded = vecs.new_zeros(
            _round_up(users, SHORT_USERS_STEP), vecs.shape[1], dtype=torch.bfloat16
        )
        padded[:users] = vecs
        rough = _rough_scores(padded, self.short)[:users]  # (B, V rounded up)
        rough[:, 0] = float("-inf")  # padding
        rough[:, rows + 1 :] = float("-inf")  # the zero columns beyond the catalogue
        exclude_rows(rough, exclude)
        rough_top, candidates = grouped_top_k(rough, wide)  # (B, wide)
        candidates.clamp_(max=rows)  # a -inf tail may name zero columns: any row will do
        table = self.model.item_emb.weight.detach()
        exact = torch.bmm(table_rows(table, candidates), vecs.unsqueeze(2)).squeeze(2)  # (B, wide)
        exact[rough_top == float("-inf")] = float("-inf")
        scores, picked = exact.topk(k, dim=1)
        return scores, candidates.gather(1, picked)


def grouped_top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`torch.topk` of (B, V) ``scores`` along V, found through groups of
    `TOP_K_GROUPS_OF` columns: each group's best, the k groups whose best is highest, and
    the top k of those groups' columns alone. A group outside those k has k better or
    equal scores elsewhere, so none of its columns is needed. The same scores as
    `torch.topk`; among equal scores the columns may differ.

    `torch.topk` ranks every column of every row, and took more of the shortlist's time
    than the product itself (docs/benchmarks.md, "Plain lists, and the shortlist's top k
    through groups of columns"). Where V is not a multiple of the group, or k exceeds the
    groups, it is `torch.topk`.
    """
    users, columns = scores.shape
    groups = columns // TOP_K_GROUPS_OF  # group g: columns g, g + groups, g + 2 * groups...
    if columns % TOP_K_GROUPS_OF or groups < k:
        return scores.topk(k, dim=1)
    best = scores.reshape(users, TOP_K_GROUPS_OF, groups).amax(1)  # (B, groups)
    top_groups = best.topk(k, dim=1, sorted=False).indices  # (B, k)
    offsets = torch.arange(0, columns, groups, device=scores.device)  # (TOP_K_GROUPS_OF,)
    columns_of = (top_groups.unsqueeze(2) + offsets).reshape(users, -1)  # (B, k * group)
    values, picked = scores.gather(1, columns_of).topk(k, dim=1)
    return values, columns_of.gather(1, picked)


def _rough_scores(users: torch.Tensor, short: torch.Tensor) -> torch.Tensor:
    """bfloat16 ``users`` (B, D) against `_short_table`'s ``short``: (B, V rounded up)."""
    if short.is_mkldnn:
        return torch.ops.mkldnn._linear_pointwise(users, short, None, "none", [], "")
    return torch.nn.functional.linear(users.to(short.device), short)


def _round_up(n: int, step: int) -> int:
    return -(-n // step) * step


def _short_table(matrix: torch.Tensor, step: int) -> torch.Tensor:
    """``matrix`` (D, V) as bfloat16 rows (V rounded up to a multiple of ``step``, D), the
    extra rows zeros; on a CPU in oneDNN's layout for a product's weights (an opaque
    tensor: `torch.Tensor.to_dense` reads it)."""
    dim, width = matrix.shape
    short = matrix.new_zeros(_round_up(width, step), dim, dtype=torch.bfloat16)
    short[:width] = matrix.T
    if short.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return short
    return torch.ops.mkldnn._reorder_linear_weight(short, SHORT_USERS_STEP)


def pad_batch(
    rows_lists: Sequence[Sequence[int]],
    max_len: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Builds a left-padded (B, W) LongTensor from per-user row lists (oldest first).

    Each list keeps its latest ``max_len`` rows; W is the longest kept length (at least 1),
    so narrow batches stay cheap. Row 0 pads on the left.
    """
    kept = [list(r)[-max_len:] if max_len > 0 else [] for r in rows_lists]
    width = max([len(r) for r in kept] + [1])
    out = np.zeros((len(kept), width), dtype=np.int64)  # numpy: no tensor per row
    for i, r in enumerate(kept):
        if r:
            out[i, width - len(r) :] = r
    seqs = torch.from_numpy(out)
    return seqs if device is None else seqs.to(device)


@torch.no_grad()
def encode_histories(
    model: SASRec, histories: Sequence[Sequence[int]], max_group: int = 256
) -> torch.Tensor:
    """User vectors (B, D) for row lists of any lengths (oldest first), in their order.

    Histories are encoded in groups of similar length (`length_groups`), each padded only
    to its own longest: a user's vector does not depend on padding, and most histories are
    far shorter than the longest in a batch (about half the time of one padded batch on
    Games: docs/benchmarks.md, "Component timings").
    """
    max_len = model.config.max_len
    lengths = [min(len(h), max_len) for h in histories]
    out = torch.empty(len(histories), model.config.dim, device=model.device)
    for group in length_groups(lengths, max_group):
        seqs = pad_batch([histories[n] for n in group], max_len, model.device)
        out[torch.tensor(group, device=model.device)] = model.encode(seqs)
    return out


def length_groups(lengths: Sequence[int], max_group: int) -> list[list[int]]:
    """Indices of ``lengths``, shortest first, cut into groups of at most ``max_group`` whose
    lengths share a power-of-two bound (1, 2, 3-4, 5-8, ...): each group pads to at most
    twice its shortest, and a batch makes a handful of model calls, not one per length."""
    if max_group < 1:
        raise ValueError(f"a group holds at least one history, not {max_group}")
    groups: list[list[int]] = []
    bound = 0
    for n in sorted(range(len(lengths)), key=lengths.__getitem__):
        if not groups or lengths[n] > bound or len(groups[-1]) == max_group:
            groups.append([])
            bound = max(bound, 1 << max(0, lengths[n] - 1).bit_length())
        groups[-1].append(n)
    return groups
