"""`rtrank forget` refuses a bad user id and an unreachable broker with one clear line."""

from __future__ import annotations

from click.testing import CliRunner

from rtrank.streams.cli.forget import forget
from rtrank.streams.settings import Settings


def test_an_id_with_control_characters_is_a_usage_error() -> None:
    result = CliRunner().invoke(forget, ["u\x01"], obj=Settings())
    assert result.exit_code == 2
    assert "user_id contains control or surrogate characters" in result.output


def test_an_id_over_the_size_limit_is_a_usage_error() -> None:
    result = CliRunner().invoke(forget, ["x" * 30], obj=Settings(max_id_bytes=10))
    assert result.exit_code == 2
    assert "longer than 10 bytes" in result.output


def test_an_unreachable_broker_ends_the_command_with_one_line() -> None:
    settings = Settings(broker="kafka://127.0.0.1:9")
    result = CliRunner().invoke(forget, ["u1"], obj=settings)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output
