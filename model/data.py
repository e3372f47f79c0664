"""Behaviour data: readers for the supported file formats and the leave-one-out split.

Formats (``fmt``):

- ``pairs``: ``user item`` per line, whitespace separated (the shared Amazon Games file).
- ``sequences``: ``user item1 item2 ...`` per line; a user's items in time order.
- ``csv``: a header naming ``user_id`` and ``item_id`` (``ts`` and ``event_type``
  optional), delimiter sniffed from the header: comma or tab (so ``.tsv`` is ``csv`` too).
- ``jsonl``: one JSON object per line with ``user_id``, ``item_id``, optional ``ts``
  (epoch milliseconds) and ``event_type``.
- ``auto``: decided from the extension, else from the first lines (see `detect_format`).

Ids are strings everywhere: the shared file's integers become ``"123"``. Blank lines are
skipped in every format. Every event type counts as an interaction.

Two ways to read: `iter_records` streams records and per-line errors in file order (a
producer reports and skips bad lines); `read_sequences` builds per-user chronological
sequences and raises `DataError` naming the first bad line (training must not silently
learn from a partly read file).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, NamedTuple

FORMATS = ("auto", "pairs", "sequences", "csv", "jsonl")
MAX_ID_CHARS = 256  # longer ids are almost certainly a broken line, not an item


class DataError(ValueError):
    """A data file cannot be read: unknown format, missing header or a bad line."""


class Record(NamedTuple):
    """One interaction as read from a file; ``line_no`` is 1-based."""

    line_no: int
    user_id: str
    item_id: str
    ts: int | None
    event_type: str | None


class LineError(NamedTuple):
    """A line that could not be parsed, with the reason (for report-and-skip callers)."""

    line_no: int
    reason: str


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guesses the format of a file from its extension, else from its first lines.

    ``.jsonl``/``.ndjson`` are jsonl, ``.csv``/``.tsv`` csv. Otherwise a first line
    starting with ``{`` means jsonl, one naming ``user_id`` means csv, and whitespace
    separated tokens mean pairs when every sampled line has exactly two tokens, else
    sequences (a sequences file whose users have one item each reads the same as pairs).
    """
    ext = os.path.splitext(str(path))[1].lower()
    if ext in (".jsonl", ".ndjson"):
        return "jsonl"
    if ext in (".csv", ".tsv"):
        return "csv"
    lines = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                lines.append(line.strip())
            if len(lines) >= 50:
                break
    if not lines:
        raise DataError(f"{path}: file is empty, cannot detect its format")
    first = lines[0]
    if first.startswith("{"):
        return "jsonl"
    if "user_id" in first and "item_id" in first:
        return "csv"
    if all(len(line.split()) == 2 for line in lines):
        return "pairs"
    return "sequences"


def iter_records(path: str | os.PathLike[str], fmt: str = "auto") -> Iterator[Record | LineError]:
    """Streams a file as records and line errors, in file order.

    Args:
        path: the data file.
        fmt: one of `FORMATS`.

    Yields:
        `Record` for each interaction (a ``sequences`` line yields one per item, all with
        that line's number) or `LineError` for a line that cannot be parsed.

    Raises:
        DataError: for problems with the whole file (unknown format, missing csv header).
        OSError: when the file cannot be opened.
    """
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(path)
    with open(path, "rb") as f:
        lines = _numbered_lines(f)
        if fmt == "csv":
            yield from _csv_records(lines, path)
            return
        parse = {"pairs": _parse_pairs, "sequences": _parse_sequences, "jsonl": _parse_jsonl}[fmt]
        for line_no, line in lines:
            if isinstance(line, LineError):
                yield line
            elif line.strip():
                yield from parse(line_no, line)


def read_sequences(path: str | os.PathLike[str], fmt: str = "auto") -> dict[str, list[str]]:
    """Reads per-user chronological item sequences.

    A user's items are ordered by ``ts`` when every one of that user's records has one
    (ties keep file order), by file order otherwise. Users appear in order of first
    appearance.

    Raises:
        DataError: on the first bad line, naming its number, or when no record is found.
    """
    events: dict[str, list[tuple[int | None, str]]] = {}
    for rec in iter_records(path, fmt):
        if isinstance(rec, LineError):
            raise DataError(f"{path}: line {rec.line_no}: {rec.reason}")
        events.setdefault(rec.user_id, []).append((rec.ts, rec.item_id))
    if not events:
        raise DataError(f"{path}: no interactions found")
    sequences = {}
    for user, evs in events.items():
        if all(ts is not None for ts, _ in evs):
            evs = sorted(evs, key=lambda e: e[0])  # stable: equal ts keep file order
        sequences[user] = [item for _, item in evs]
    return sequences


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, recorded in checkpoints to tie a model to its data."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Split:
    """Leave-one-out split of per-user sequences (items as vocabulary rows).

    ``train`` holds every user; ``valid`` and ``test`` only users with at least 3 items.
    Users with fewer than 3 items keep all their items for training and are not
    evaluated (the SASRec paper's rule): one held-out item needs a history to predict from.
    """

    users: list[str]
    train: dict[str, list[int]]
    valid: dict[str, int]
    test: dict[str, int]

    def before_test(self) -> dict[str, list[int]]:
        """Every user's items but the test one: the training part plus the validation item."""
        return {u: (s + [self.valid[u]]) if u in self.valid else s for u, s in self.train.items()}

    def eval_inputs(self, stage: str) -> tuple[list[str], list[list[int]], list[int]]:
        """Returns (users, input histories, targets) for ``stage`` ``valid`` or ``test``.

        The test input includes the validation item, as in the paper.
        """
        if stage == "valid":
            users = list(self.valid)
            return users, [self.train[u] for u in users], [self.valid[u] for u in users]
        if stage == "test":
            users = list(self.test)
            hist = [self.train[u] + [self.valid[u]] for u in users]
            return users, hist, [self.test[u] for u in users]
        raise ValueError(f"stage must be 'valid' or 'test', not {stage!r}")


def leave_one_out(sequences: Mapping[str, Sequence[int]]) -> Split:
    """Splits each user's sequence: last = test, second to last = validation, rest = train."""
    train: dict[str, list[int]] = {}
    valid: dict[str, int] = {}
    test: dict[str, int] = {}
    for user, seq in sequences.items():
        seq = list(seq)
        if len(seq) < 3:
            train[user] = seq
            continue
        train[user], valid[user], test[user] = seq[:-2], seq[-2], seq[-1]
    return Split(users=list(sequences), train=train, valid=valid, test=test)


# --- parsing -------------------------------------------------------------------------


def _numbered_lines(f: BinaryIO) -> Iterator[tuple[int, str | LineError]]:
    """Numbers lines from 1; a line that is not valid UTF-8 becomes a `LineError`."""
    for i, bline in enumerate(f, 1):
        try:
            yield i, bline.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield i, LineError(i, "not valid UTF-8")


def _check_id(value: object, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{name} must be a string or an integer, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError(f"{name} is empty")
    if len(text) > MAX_ID_CHARS:
        raise ValueError(f"{name} is longer than {MAX_ID_CHARS} characters")
    return text


def _parse_ts(value: object) -> int | None:
    """Epoch milliseconds from a number, a numeric string or an ISO-8601 string."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError("ts must be epoch milliseconds, got a boolean")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            pass
        try:
            return int(datetime.fromisoformat(value).timestamp() * 1000)
        except ValueError:
            raise ValueError(
                f"ts {value[:40]!r} is neither epoch milliseconds nor ISO-8601"
            ) from None
    raise ValueError(f"ts must be a number, got {type(value).__name__}")


def _parse_pairs(line_no: int, line: str) -> Iterator[Record | LineError]:
    parts = line.split()
    if len(parts) != 2:
        yield LineError(line_no, f"expected 'user item', got {len(parts)} fields")
        return
    try:
        yield Record(line_no, _check_id(parts[0], "user"), _check_id(parts[1], "item"), None, None)
    except ValueError as e:
        yield LineError(line_no, str(e))


def _parse_sequences(line_no: int, line: str) -> Iterator[Record | LineError]:
    parts = line.split()
    if len(parts) < 2:
        yield LineError(line_no, "expected 'user item [item ...]', got no items")
        return
    try:
        user = _check_id(parts[0], "user")
        items = [_check_id(p, "item") for p in parts[1:]]
    except ValueError as e:
        yield LineError(line_no, str(e))
        return
    for item in items:
        yield Record(line_no, user, item, None, None)


def _record_from_mapping(line_no: int, obj: Mapping[str, object]) -> Record:
    missing = [k for k in ("user_id", "item_id") if obj.get(k) in (None, "")]
    if missing:
        raise ValueError(f"missing {' and '.join(missing)}")
    event_type = obj.get("event_type")
    if event_type is not None and not isinstance(event_type, str):
        raise ValueError("event_type must be a string")
    return Record(
        line_no,
        _check_id(obj["user_id"], "user_id"),
        _check_id(obj["item_id"], "item_id"),
        _parse_ts(obj.get("ts")),
        event_type or None,
    )


def _parse_jsonl(line_no: int, line: str) -> Iterator[Record | LineError]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        yield LineError(line_no, f"invalid JSON: {e.msg}")
        return
    if not isinstance(obj, dict):
        yield LineError(line_no, f"expected a JSON object, got {type(obj).__name__}")
        return
    try:
        yield _record_from_mapping(line_no, obj)
    except ValueError as e:
        yield LineError(line_no, str(e))


def _csv_records(
    lines: Iterator[tuple[int, str | LineError]], path: str | os.PathLike[str]
) -> Iterator[Record | LineError]:
    header: list[str] | None = None
    delimiter = ","
    for line_no, line in lines:
        if isinstance(line, LineError):
            if header is None:
                raise DataError(f"{path}: line {line_no}: header {line.reason}")
            yield line
            continue
        if not line.strip():
            continue
        if header is None:
            delimiter = "\t" if "\t" in line else ","
            header = [h.strip() for h in next(csv.reader([line], delimiter=delimiter))]
            if "user_id" not in header or "item_id" not in header:
                raise DataError(
                    f"{path}: line {line_no}: csv header must name user_id and item_id, "
                    f"got {header[:8]}"
                )
            continue
        fields = next(csv.reader([line], delimiter=delimiter))
        if len(fields) != len(header):
            yield LineError(line_no, f"expected {len(header)} fields, got {len(fields)}")
            continue
        try:
            yield _record_from_mapping(line_no, dict(zip(header, fields, strict=True)))
        except ValueError as e:
            yield LineError(line_no, str(e))
    if header is None:
        raise DataError(f"{path}: csv file has no header line")
