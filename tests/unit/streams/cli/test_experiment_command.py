"""``rtrank experiment report`` and ``rtrank bench experiment`` end a bad experiment file, or
none, with one line before reading any topic."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from rtrank.streams.bench.experiment_bench import experiment_command
from rtrank.streams.cli.experiment import report_command
from rtrank.streams.settings import Settings

SETTINGS = Settings(broker="kafka://127.0.0.1:1")  # nothing answers there: never reached


def test_a_report_without_an_experiment_says_how_to_give_one() -> None:
    result = CliRunner().invoke(report_command, [], obj=SETTINGS)
    assert result.exit_code == 2
    assert "give --experiment FILE or RTRANK_EXPERIMENT_FILE" in result.output


def test_a_report_of_a_malformed_experiment_ends_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "exp.json"
    bad.write_text('{"name": "e", "salt": "s", "variants": []}')
    result = CliRunner().invoke(report_command, ["--experiment", str(bad)], obj=SETTINGS)
    assert result.exit_code == 1
    assert result.output == "Error: variants must be a list of at least two\n"


def test_bench_experiment_refuses_a_malformed_experiment_before_starting_anything(
    tmp_path: Path,
) -> None:
    data = tmp_path / "events.txt"
    data.write_text("1 1\n1 2\n2 1\n2 2\n")
    bad = tmp_path / "exp.json"
    bad.write_text('{"name": "e", "salt": "s", "mode": "bandit", "variants": []}')
    result = CliRunner().invoke(experiment_command, [str(data), str(bad)], obj=SETTINGS)
    assert result.exit_code == 1
    assert result.output == "Error: mode must be 'ab' or 'interleave', not 'bandit'\n"
