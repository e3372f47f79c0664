"""`rtrank produce` refuses bad invocations with one clear line, before touching Kafka."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from rtrank.streams.cli.produce import produce
from rtrank.streams.settings import Settings


def test_neither_path_nor_synthetic_is_a_usage_error() -> None:
    result = CliRunner().invoke(produce, [], obj=Settings())
    assert result.exit_code == 2
    assert "give either PATH or --synthetic" in result.output


def test_both_path_and_synthetic_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("1 2\n")
    result = CliRunner().invoke(produce, [str(path), "--synthetic"], obj=Settings())
    assert result.exit_code == 2


def test_an_unreadable_csv_is_reported_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("no,header,here\n1,2,3\n")
    result = CliRunner().invoke(produce, [str(path), "--format", "csv"], obj=Settings())
    assert result.exit_code == 1
    assert "Error:" in result.output
    assert "Traceback" not in result.output
