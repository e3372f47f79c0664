"""The index benchmark's rows and recall, on a small catalogue (figures are never asserted)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.data import read_sequences
from rtrank.model.index_bench import data_users, recall, top_rows
from rtrank.model.item_ann import IvfConfig, IvfIndex
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.serving import ItemIndex, resolve_shortlist
from rtrank.model.synthetic import generate
from rtrank.model.train import TrainConfig, load_dataset, train
from rtrank.streams.bench.index_bench import index_command
from rtrank.streams.bench.pipeline_bench import model_only_rate
from rtrank.streams.settings import Settings
from tests.unit.streams.scorer.test_scoring import small_checkpoint


def test_an_exact_a_shortlist_where_native_and_an_ivf_row_per_size_and_kind_of_rows() -> None:
    args = ["--items", "400,800", "--rows", "topics,random", "--users", "32", "--dim", "16"]
    result = CliRunner().invoke(index_command, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["results"]
    native = resolve_shortlist("auto", torch.device("cpu"))
    assert [(r["items"], r["rows"], r["index"].split()[0]) for r in rows] == [
        (size, kind, index)
        for size in (400, 800)
        for kind in ("topics", "random")
        for index in ("exact", "shortlist", "ivf")
        if native or index != "shortlist"
    ]
    assert all(r["recall_at_10"] == 1.0 for r in rows if r["index"] in ("exact", "shortlist"))


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


@pytest.fixture(scope="module")
def trained_games(tmp_path_factory) -> tuple[str, str]:
    """(checkpoint, data file): a small SASRec trained in the test on a tiny data set in
    the Games format (one "user item" pair a line)."""
    folder = tmp_path_factory.mktemp("trained")
    events = generate(num_users=120, num_items=200, min_len=4, max_len=12, seed=0)
    data = folder / "games.txt"
    data.write_text("".join(f"{u} {i}\n" for u, evs in events.items() for i, _ in evs))
    dataset = load_dataset(str(data))
    config = SASRecConfig(num_items=len(dataset.vocab), dim=16, max_len=8, dropout=0.0)
    quick = TrainConfig(epochs=2, batch_size=32, device="cpu", refit_epochs=0, ema_decay=0.0)
    checkpoint = folder / "model.safetensors"
    train(dataset, config, quick, out=str(checkpoint))
    return str(checkpoint), str(data)


def test_a_trained_checkpoint_gives_an_exact_a_shortlist_where_native_and_an_ivf_row(
    trained_games,
) -> None:
    checkpoint, data = trained_games
    args = ["--checkpoint", checkpoint, "--data", data, "--users", "50", "--lists", "4"]
    result = CliRunner().invoke(index_command, [*args, "--probe", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    shortlist = [("model", "shortlist")] if resolve_shortlist("auto", torch.device("cpu")) else []
    assert [(r["rows"], r["index"]) for r in out["results"]] == [
        ("model", "exact"),
        *shortlist,
        ("model", "ivf 4/1"),
    ]
    exact, ivf = out["results"][0], out["results"][-1]
    assert exact["recall_at_10"] == 1.0
    assert 0.0 <= ivf["recall_at_10"] <= 1.0
    assert out["users"] == 50


def test_seen_items_never_appear_in_the_exact_or_the_ivf_top_10(trained_games) -> None:
    checkpoint, data = trained_games
    loaded = load_checkpoint(checkpoint)
    vectors, seen = data_users(loaded.model, loaded.vocab, read_sequences(data), users=40)
    assert all(seen)
    for index in (
        ItemIndex(loaded.model, shortlist=False),
        IvfIndex(loaded.model, IvfConfig(4, 1)),
    ):
        rows, _ = top_rows(index, vectors, batch=7, k=10, exclude=seen)
        assert all(set(top).isdisjoint(s) for top, s in zip(rows.tolist(), seen, strict=True))


def test_checkpoint_without_data_is_a_usage_error(trained_games) -> None:
    result = CliRunner().invoke(index_command, ["--checkpoint", trained_games[0]])
    assert result.exit_code == 2
    assert "--checkpoint and --data go together" in result.output
