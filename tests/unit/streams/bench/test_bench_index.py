"""The index benchmark's rows and recall, on a small catalogue (figures are never asserted)."""

from __future__ import annotations

import json

import torch
from click.testing import CliRunner

from rtrank.model.index_bench import recall
from rtrank.streams.bench.index_bench import index_command
from rtrank.streams.bench.pipeline_bench import model_only_rate
from rtrank.streams.settings import Settings
from tests.unit.streams.scorer.test_scoring import small_checkpoint


def test_one_exact_and_one_ivf_row_per_size_and_kind_of_rows() -> None:
    args = ["--items", "400,800", "--rows", "topics,random", "--users", "32", "--dim", "16"]
    result = CliRunner().invoke(index_command, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["results"]
    assert [(r["items"], r["rows"], r["index"].split()[0]) for r in rows] == [
        (size, kind, index)
        for size in (400, 800)
        for kind in ("topics", "random")
        for index in ("exact", "ivf")
    ]
    assert all(r["recall_at_10"] == 1.0 for r in rows if r["index"] == "exact")


def test_an_unknown_kind_of_rows_is_a_usage_error() -> None:
    result = CliRunner().invoke(index_command, ["--rows", "clustered"])
    assert result.exit_code == 2
    assert "use topics, random or both" in result.output


def test_recall_is_the_share_of_the_true_rows_found() -> None:
    found = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    truth = torch.tensor([[1, 2, 9, 9], [5, 6, 7, 8]])
    assert recall(found, truth) == (0.5 + 1.0) / 2


def test_bench_pipeline_measures_the_model_alone_with_the_ivf_index(tmp_path) -> None:
    settings = Settings(checkpoint=small_checkpoint(tmp_path), device="cpu", item_index="ivf")
    assert 0 < model_only_rate(settings) < float("inf")
