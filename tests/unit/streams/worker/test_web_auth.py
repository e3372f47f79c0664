"""GET /recommendations/{user_id} can require a bearer token: who gets through, and the
challenge the others get."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtrank.streams.settings import Settings, SettingsError
from rtrank.streams.worker.web_auth import CHALLENGE, bearer_token, challenge


def test_without_a_token_configured_every_request_gets_through() -> None:
    assert challenge({}, bearer_token(Settings())) is None


def test_the_right_token_gets_through() -> None:
    token = bearer_token(Settings(web_token="s3cret"))
    assert challenge({"Authorization": "Bearer s3cret"}, token) is None


def test_the_scheme_is_read_case_insensitively() -> None:
    assert challenge({"Authorization": "bearer s3cret"}, b"s3cret") is None


def test_a_request_without_a_token_is_challenged() -> None:
    assert challenge({}, b"s3cret") == CHALLENGE


def test_another_scheme_is_challenged() -> None:
    assert challenge({"Authorization": "Basic czNjcmV0"}, b"s3cret") == CHALLENGE


def test_a_wrong_token_is_challenged_as_invalid() -> None:
    refused = challenge({"Authorization": "Bearer guess"}, b"s3cret")
    assert refused == 'Bearer realm="rtrank", error="invalid_token"'


def test_the_token_is_read_from_its_file_without_surrounding_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert bearer_token(Settings(web_token_file=str(path))) == b"from-file"


def test_a_missing_token_file_is_one_line_naming_its_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="^RTRANK_WEB_TOKEN_FILE=.* cannot be read") as e:
        bearer_token(Settings(web_token_file=str(tmp_path / "absent")))
    assert "\n" not in str(e.value)


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("\n")
    with pytest.raises(SettingsError, match="is empty"):
        bearer_token(Settings(web_token_file=str(path)))


def test_a_token_and_a_token_file_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not both"):
        bearer_token(Settings(web_token="a", web_token_file=str(tmp_path / "t")))
