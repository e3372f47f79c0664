"""An experiment file is checked at load with one-line errors, and users are assigned by a
stable hash of the salt and their id."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from rtrank.streams.experiments.definition import (
    INTERLEAVED,
    ExperimentError,
    load_experiment,
    parse_experiment,
)
from rtrank.streams.settings import Settings, SettingsError

USERS = [f"user-{n}" for n in range(4000)]


def ab(salt: str = "s1", shares: tuple[float, float] = (0.5, 0.5), **extra) -> dict:
    return {
        "name": "exp",
        "salt": salt,
        "mode": "ab",
        "variants": [
            {"name": "control", "share": shares[0]},
            {"name": "treatment", "share": shares[1], "overrides": {"mmr_lambda": 0.7}},
        ],
        **extra,
    }


def assignment(raw: dict) -> dict[str, str]:
    experiment = parse_experiment(raw)
    return {u: experiment.variant_of(u).name for u in USERS}


def test_a_user_keeps_the_variant_of_a_fresh_parse_of_the_same_file() -> None:
    assert assignment(ab()) == assignment(ab())


def test_the_assignment_is_the_same_in_another_process() -> None:
    """Another worker, or this one after a restart: a new interpreter, another hash seed."""
    code = (
        "import json, sys\n"
        "from rtrank.streams.experiments.definition import parse_experiment\n"
        "e = parse_experiment(json.loads(sys.argv[1]))\n"
        "print(json.dumps([e.variant_of(f'user-{n}').name for n in range(4000)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(ab())],
        capture_output=True,
        check=True,
        text=True,
        env={"PYTHONHASHSEED": "123"},
    )
    assert json.loads(out.stdout) == list(assignment(ab()).values())


def test_a_new_salt_reshuffles_about_half_of_the_users_between_two_even_variants() -> None:
    before, after = assignment(ab("s1")), assignment(ab("s2"))
    moved = sum(before[u] != after[u] for u in USERS) / len(USERS)
    assert 0.45 < moved < 0.55


def test_users_are_split_in_the_declared_shares() -> None:
    counts = Counter(assignment(ab(shares=(1, 4))).values())
    assert counts["treatment"] / len(USERS) == pytest.approx(0.8, abs=0.02)


def test_shares_are_normalised_weights() -> None:
    experiment = parse_experiment(ab(shares=(1, 3)))
    assert [v.share for v in experiment.variants] == [0.25, 0.75]


def test_the_first_variant_is_the_control() -> None:
    assert parse_experiment(ab()).control.name == "control"


def test_every_list_of_an_interleave_experiment_carries_the_interleaved_variant() -> None:
    experiment = parse_experiment({**ab(), "mode": "interleave"})
    assert {experiment.label_of(u) for u in USERS[:50]} == {INTERLEAVED}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "bandit"}, "mode must be 'ab' or 'interleave', not 'bandit'"),
        ({"salt": ""}, "salt must be a string of 1-64 bytes"),
        ({"variants": [{"name": "a"}]}, "variants must be a list of at least two"),
        ({"variants": [{"name": "a"}, {"name": "a"}]}, "variant names must be unique"),
        ({"variants": [{"name": "a"}, {"name": "b", "share": 0}]}, "share must be a number > 0"),
        (
            {"variants": [{"name": "a"}, {"name": "b", "overrides": {"broker": "x"}}]},
            "variant 'b': 'broker' cannot be overridden",
        ),
        (
            {
                "variants": [
                    {"name": "a", "online_learning": True},
                    {"name": "b", "online_learning": True},
                ]
            },
            "at most one variant learns online",
        ),
        (
            {
                "variants": [
                    {"name": "a", "online_learning": True, "overrides": {"checkpoint": "x"}},
                    {"name": "b"},
                ]
            },
            "variant 'a' learns online: it serves RTRANK_CHECKPOINT",
        ),
        (
            {
                "mode": "interleave",
                "variants": [{"name": "a", "online_learning": True}, {"name": "b"}],
            },
            "no variant of an interleave experiment learns online",
        ),
        (
            {"mode": "interleave", "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
            "an interleave experiment has exactly two variants",
        ),
        ({"color": "red"}, "unknown field 'color'"),
    ],
)
def test_a_malformed_experiment_is_refused_with_one_line_saying_why(change, message) -> None:
    with pytest.raises(ExperimentError) as caught:
        parse_experiment({**ab(), **change})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_toml_file_declares_the_same_experiment_as_json(tmp_path: Path) -> None:
    toml = tmp_path / "exp.toml"
    toml.write_text(
        'name = "exp"\nsalt = "s1"\nmode = "ab"\n'
        '[[variants]]\nname = "control"\nshare = 0.5\n'
        '[[variants]]\nname = "treatment"\nshare = 0.5\noverrides = { mmr_lambda = 0.7 }\n'
    )
    assert load_experiment(toml) == parse_experiment(ab())


def test_no_file_is_no_experiment() -> None:
    assert load_experiment("") is None


def test_a_file_that_is_not_json_is_refused_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "exp.json"
    bad.write_text("{name: ")
    with pytest.raises(ExperimentError, match=f"{bad} is not valid JSON"):
        load_experiment(bad)


def test_the_settings_refuse_a_variant_whose_override_is_not_a_valid_setting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "exp.json"
    raw = ab()
    raw["variants"][1]["overrides"] = {"mmr_lambda": 1.5}
    path.write_text(json.dumps(raw))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"RTRANK_EXPERIMENT_FILE": str(path)})
    assert str(caught.value) == (
        f"RTRANK_EXPERIMENT_FILE={str(path)!r} is not valid: "
        "variant 'treatment': RTRANK_MMR_LAMBDA=1.5 must be <= 1.0"
    )
