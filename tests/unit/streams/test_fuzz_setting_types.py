"""Fuzzing settings values: any text in any ``RTRANK_*`` variable gives settings that read
back the same, or one `SettingsError`; the structured parsers raise only ``ValueError``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rtrank.streams.setting_types import parse_names, parse_pinned, parse_weights
from rtrank.streams.settings import Settings, SettingsError, to_env, variable
from tests.unit.streams.fuzz_inputs import FUZZ

STRUCTURED = ["category_boosts", "blocked_items", "pinned_items", "event_weights"]

entry_parts = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "1_0", "٣", "-1", "0x1", " ", ""]),
    st.sampled_from([4300, 4301, 5000]).map(lambda n: "9" * n),
)
entries = st.tuples(entry_parts, st.sampled_from([":", "@", ""]), entry_parts).map("".join)
texts = st.one_of(st.text(max_size=40), st.lists(entries, max_size=4).map(",".join))


@FUZZ
@given(text=texts)
def test_the_structured_parsers_return_a_value_or_raise_value_error(text) -> None:
    for parse in (parse_weights, parse_pinned, parse_names):
        try:
            parse(text)
        except ValueError as e:
            assert str(e)


def assert_read_back_or_refused(name: str, text: str) -> None:
    try:
        settings = Settings.from_env({variable(name): text})
    except SettingsError as e:
        assert variable(name) in str(e) and "\n" not in str(e)
        return
    assert Settings.from_env(to_env(settings)) == settings


@FUZZ
@given(name=st.sampled_from(sorted(Settings.model_fields)), text=texts)
def test_any_text_in_a_variable_reads_back_the_same_or_is_one_settings_error(name, text) -> None:
    assert_read_back_or_refused(name, text)


@FUZZ
@given(name=st.sampled_from(STRUCTURED), text=st.lists(entries, max_size=4).map(",".join))
def test_any_structured_value_reads_back_the_same_or_is_one_settings_error(name, text) -> None:
    assert_read_back_or_refused(name, text)


# The corpus: inputs the fuzzing found, each kept as a plain test.


def test_a_nan_weight_is_refused() -> None:
    with pytest.raises(SettingsError, match="RTRANK_CATEGORY_BOOSTS"):
        Settings.from_env({"RTRANK_CATEGORY_BOOSTS": "0:NAN"})


def test_an_infinite_event_weight_is_refused() -> None:
    with pytest.raises(SettingsError, match="RTRANK_EVENT_WEIGHTS"):
        Settings.from_env({"RTRANK_EVENT_WEIGHTS": "view:1,purchase:inf"})


def test_a_nan_weight_given_as_a_value_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(event_weights={"view": float("nan")})
