"""Item vocabulary: external item ids (strings) <-> embedding rows.

Row 0 is padding and never maps to an item. New items are appended, so a row keeps its
meaning once given out: a model trained on version N of a vocabulary stays valid for the
first rows of version N+1 (the model grows its embedding table to match, `SASRec.grow`).
The one exception is a capped vocabulary: the online trainer then gives the coldest rows to
new items (`reassign`, `rtrank.model.online.OnlineConfig.max_items`), and the delta that
carries the new weights names the rows given (`rtrank.model.updates.Delta.reused`), so the
trainer and every worker forget the old ids together. ``version`` counts changes so that
workers and the trainer can tell which mapping a set of weights expects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

PAD = 0  # embedding row reserved for padding


class Vocabulary:
    """Mapping between external item ids and embedding rows: appended to, and reassigned
    only by a capped trainer (`reassign`).

    Args:
        ids: initial item ids, given rows 1, 2, ... in order (duplicates are ignored).
        version: the vocabulary's version; incremented by every `add` that adds a row.
    """

    def __init__(self, ids: Iterable[str] = (), version: int = 0) -> None:
        self._items: list[str] = [""]  # row 0: padding
        self._rows: dict[str, int] = {}
        for item_id in ids:
            self._add(item_id)
        self.version = version

    def __len__(self) -> int:
        """Number of rows, padding included (the embedding table's height)."""
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._rows

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._items == other._items

    def __repr__(self) -> str:
        return f"Vocabulary({len(self) - 1} items, version={self.version})"

    def add(self, item_id: str) -> int:
        """Returns the row of ``item_id``, appending a new row when it is unknown."""
        row = self._rows.get(item_id)
        if row is None:
            row = self._add(item_id)
            self.version += 1
        return row

    def reassign(self, changes: Mapping[int, str]) -> list[str]:
        """Gives each row of ``changes`` to its new item id, forgetting the ids they held;
        returns those, in the order of ``changes``. Nothing changes on an error.

        Raises:
            ValueError: a row is not an item row, an id is not a non-empty string, or an id
                would name two rows afterwards.
        """
        if not changes:
            return []
        items = list(self._items)
        for row, item_id in changes.items():
            if not isinstance(row, int) or not PAD < row < len(items):
                raise ValueError(f"row {row!r} is not an item row (1..{len(items) - 1})")
            if not isinstance(item_id, str) or not item_id:
                raise ValueError(f"item ids are non-empty strings, got {item_id!r}")
            items[row] = item_id
        if len(set(items)) != len(items):
            raise ValueError("reassigned ids would name two rows")
        forgotten = [self._items[row] for row in changes]
        for old in forgotten:
            del self._rows[old]
        for row, item_id in changes.items():
            self._rows[item_id] = row
        self._items = items
        self.version += 1
        return forgotten

    def row(self, item_id: str) -> int | None:
        """Returns the row of ``item_id``, or None when it is unknown."""
        return self._rows.get(item_id)

    def rows(self, ids: Iterable[str]) -> list[int]:
        """Returns the rows of the known ids in order; unknown ids are skipped."""
        return [r for r in map(self._rows.get, ids) if r is not None]

    def item(self, row: int) -> str:
        """Returns the external id of ``row``.

        Raises:
            IndexError: for row 0 (padding) or a row past the end.
        """
        if row <= PAD or row >= len(self._items):
            raise IndexError(f"row {row} is not an item row (1..{len(self._items) - 1})")
        return self._items[row]

    def ids(self, rows: Iterable[int]) -> list[str]:
        """The external ids of many rows at once (row 0, padding, gives ""); the hot path of
        turning a top-k into ids, so rows are not range-checked: they must come from this
        vocabulary's model."""
        items = self._items
        return [items[r] for r in rows]

    def items(self) -> list[str]:
        """External ids in row order, starting at row 1."""
        return self._items[1:]

    def to_json(self) -> str:
        """Serialises to a JSON list of ids in row order (row 1 first)."""
        return json.dumps(self._items[1:], ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str, version: int = 0) -> Vocabulary:
        """Rebuilds a vocabulary from `to_json` output.

        Raises:
            ValueError: when the text is not a JSON list of distinct non-empty strings.
        """
        ids = json.loads(text)
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise ValueError("vocabulary JSON must be a list of non-empty strings")
        if len(set(ids)) != len(ids):
            raise ValueError("vocabulary JSON has duplicate ids")
        return cls(ids, version=version)

    def _add(self, item_id: str) -> int:
        if not isinstance(item_id, str) or not item_id:
            raise ValueError(f"item ids are non-empty strings, got {item_id!r}")
        if item_id in self._rows:
            return self._rows[item_id]
        self._rows[item_id] = len(self._items)
        self._items.append(item_id)
        return self._rows[item_id]
