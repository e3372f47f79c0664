"""``rtrank train`` / ``eval`` / ``bench quality`` as a user runs them (click, no broker)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from rtrank.streams.cli.training import eval_command, quality_command, train_command

FAST = ["--epochs", "2", "--dim", "16", "--device", "cpu", "--batch-size", "64"]


@pytest.fixture
def events_file(synthetic_jsonl):
    path, _ = synthetic_jsonl(num_users=120, num_items=40, min_len=4, max_len=10, seed=1)
    return path


def test_train_then_eval_a_checkpoint(events_file, tmp_path):
    ckpt = tmp_path / "m.safetensors"
    runner = CliRunner()
    trained = runner.invoke(train_command, [str(events_file), "--out", str(ckpt), *FAST])
    assert trained.exit_code == 0, trained.output
    assert "best epoch" in trained.output and ckpt.exists()
    evaluated = runner.invoke(
        eval_command, [str(events_file), "--checkpoint", str(ckpt), "--protocol", "full"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "test full: hit@10" in evaluated.output


def test_quality_json_is_one_object_with_every_model_and_protocol(events_file, tmp_path):
    png = tmp_path / "curve.png"
    result = CliRunner().invoke(
        quality_command, [str(events_file), "--json", "--plot", str(png), *FAST]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    pairs = {(r["model"], r["protocol"]) for r in report["results"]}
    assert pairs == {
        (m, p) for m in ("rtrank", "popular", "transitions") for p in ("sampled100", "full")
    }
    assert set(report["results"][0]) >= {"hit@10", "ndcg@10", "mrr", "train_seconds", "device"}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quality_table_names_the_machine(events_file):
    result = CliRunner().invoke(quality_command, [str(events_file), *FAST])
    assert result.exit_code == 0, result.output
    assert "transitions" in result.output and "machine:" in result.output


def test_quality_can_keep_the_model_it_trained(events_file, tmp_path):
    ckpt = tmp_path / "quality.safetensors"
    result = CliRunner().invoke(quality_command, [str(events_file), "--out", str(ckpt), *FAST])
    assert result.exit_code == 0, result.output
    evaluated = CliRunner().invoke(eval_command, [str(events_file), "--checkpoint", str(ckpt)])
    assert evaluated.exit_code == 0, evaluated.output


def test_bad_line_is_a_one_line_error_naming_it(write_file, tmp_path):
    bad = write_file("bad.txt", "1 2\n1 3\n1 2 3 4\n")
    result = CliRunner().invoke(
        train_command, [str(bad), "--format", "pairs", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code != 0
    assert "line 3" in result.output and "Traceback" not in result.output


def test_foreign_checkpoint_is_a_one_line_error(events_file, write_file):
    junk = write_file("junk.safetensors", b"not a checkpoint")
    result = CliRunner().invoke(eval_command, [str(events_file), "--checkpoint", str(junk)])
    assert result.exit_code != 0
    assert "Error:" in result.output and "Traceback" not in result.output


def test_unknown_device_is_a_one_line_error(events_file, tmp_path):
    result = CliRunner().invoke(
        train_command, [str(events_file), "--out", str(tmp_path / "m"), "--device", "tpu"]
    )
    assert result.exit_code != 0 and "tpu" in result.output


def test_plotting_without_matplotlib_names_the_extra_before_training(
    events_file, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the bench extra is absent
    result = CliRunner().invoke(
        quality_command, [str(events_file), "--plot", str(tmp_path / "c.png"), *FAST]
    )
    assert result.exit_code == 2
    assert "rtrank[bench]" in result.output
    assert "transitions" not in result.output  # nothing was trained
