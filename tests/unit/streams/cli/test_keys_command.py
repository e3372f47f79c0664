"""``rtrank keys new``: a key pair for signing model updates, never overwriting one."""

from __future__ import annotations

from click.testing import CliRunner

from rtrank.streams.cli.keys import keys


def test_keys_new_writes_a_pair_and_says_which_variable_takes_which(tmp_path) -> None:
    result = CliRunner().invoke(keys, ["new", "--out", str(tmp_path / "k")])
    assert result.exit_code == 0, result.output
    assert f"RTRANK_UPDATE_SIGNING_KEY_FILE={tmp_path / 'k' / 'update-signing.key'}" in (
        result.output
    )
    again = CliRunner().invoke(keys, ["new", "--out", str(tmp_path / "k")])
    assert again.exit_code == 1 and "exists already" in again.output
    assert len(again.output.strip().splitlines()) == 1
