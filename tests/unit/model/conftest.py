"""Factory fixtures for the model tests: tiny synthetic data, files in each format, models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.synthetic import generate
from rtrank.model.vocab import Vocabulary

# The shared data set lies in ../shared/data beside the checkout (ARCHITECTURE.md); not a
# setting of rtrank's, so not an RTRANK_* variable.
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"
AMAZON_GAMES = Path(os.environ.get("SHARED_DATA_DIR", SHARED_DATA)) / "amazon_games.txt"


@pytest.fixture
def amazon_games() -> Path:
    """The shared Amazon Games file; the test is skipped when it is absent."""
    if not AMAZON_GAMES.is_file():
        pytest.skip(f"{AMAZON_GAMES} not present")
    return AMAZON_GAMES


@pytest.fixture
def write_file(tmp_path):
    """Writes ``text`` to a file called ``name`` in a temporary folder; returns its path."""

    def write(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def synthetic_jsonl(write_file):
    """Writes synthetic data as jsonl; returns (path, data)."""

    def make(name: str = "events.jsonl", **kwargs) -> tuple[Path, dict]:
        data = generate(**kwargs)
        lines = [
            json.dumps({"user_id": u, "item_id": i, "ts": ts, "event_type": "view"})
            for u, evs in data.items()
            for i, ts in evs
        ]
        return write_file(name, "\n".join(lines) + "\n"), data

    return make


@pytest.fixture
def tiny_model():
    """A small random model in eval mode over ``num_items`` item rows (+ padding)."""

    def make(num_items: int = 30, seed: int = 0, **kwargs) -> SASRec:
        torch.manual_seed(seed)
        cfg = SASRecConfig(num_items=num_items + 1, dim=16, max_len=10, dropout=0.0, **kwargs)
        return SASRec(cfg).eval()

    return make


@pytest.fixture
def tiny_vocab():
    def make(num_items: int = 30) -> Vocabulary:
        return Vocabulary(f"item-{i}" for i in range(num_items))

    return make
