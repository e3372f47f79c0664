"""The catalogue a bench publishes for its synthetic items."""

from __future__ import annotations

import json

from rtrank.model.synthetic import item_id
from rtrank.streams.bench.catalogue_records import (
    CATEGORIES,
    CREATED_OVER_DAYS,
    DAY_MS,
    catalogue_records,
)
from rtrank.streams.catalogue import parse_item
from rtrank.streams.validation import Limits

NOW = 1_700_000_000_000


def test_every_synthetic_item_gets_one_valid_available_record() -> None:
    records = catalogue_records(500, NOW)
    assert [r["item_id"] for r in records] == [item_id(n) for n in range(500)]
    for r in records:
        parsed = parse_item(r["item_id"].encode(), json.dumps(r).encode(), Limits(), now_ms=NOW)
        assert parsed.available and parsed.created_at == r["created_at"]


def test_items_were_created_over_the_past_year_in_every_category() -> None:
    records = catalogue_records(2000, NOW)
    ages = [NOW - r["created_at"] for r in records]
    assert 0 <= min(ages) and max(ages) < CREATED_OVER_DAYS * DAY_MS
    assert max(ages) > (CREATED_OVER_DAYS - 30) * DAY_MS  # spread, not bunched
    assert len({r["category"] for r in records}) == CATEGORIES


def test_the_same_seed_gives_the_same_catalogue() -> None:
    assert catalogue_records(50, NOW, seed=3) == catalogue_records(50, NOW, seed=3)
    assert catalogue_records(50, NOW, seed=3) != catalogue_records(50, NOW, seed=4)
