"""The report's statistics: means over events with users as the unit, differences,
chi-square tails and the sample-ratio check."""

from __future__ import annotations

import math
import random

import pytest

from rtrank.streams.experiments.stats import (
    chi2_sf,
    difference,
    ratio_estimate,
    sample_ratio_check,
)


def test_the_mean_is_over_events_whatever_the_users() -> None:
    assert ratio_estimate([1, 3], [2, 2]).mean == 1.0
    assert ratio_estimate([1, 0], [1, 3]).mean == 0.25


def test_with_one_event_per_user_the_error_is_the_usual_standard_error() -> None:
    values = [random.Random(7).random() for _ in range(200)]
    mean = sum(values) / 200
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 199)
    assert ratio_estimate(values, [1] * 200).se == pytest.approx(sd / math.sqrt(200))


def test_a_user_who_repeats_one_outcome_counts_as_one_user_not_many_events() -> None:
    """Clustered outcomes widen the interval: 10 users x 20 equal events is not 200 draws."""
    clustered = ratio_estimate([20.0] * 5 + [0.0] * 5, [20] * 10)
    independent = ratio_estimate([1.0] * 100 + [0.0] * 100, [1] * 200)
    assert clustered.mean == independent.mean == 0.5
    assert clustered.se > 3 * independent.se


def test_chi_square_tails_match_the_tables() -> None:
    for x, df in [(3.841, 1), (5.991, 2), (7.815, 3), (9.488, 4), (11.070, 5)]:
        assert chi2_sf(x, df) == pytest.approx(0.05, abs=2e-4)


def test_a_difference_of_two_equal_groups_is_not_significant() -> None:
    a = ratio_estimate([1.0] * 50 + [0.0] * 50, [1] * 100)
    d = difference(a, a)
    assert d.diff == 0.0 and d.p == 1.0


def test_the_ratio_check_passes_users_split_as_declared() -> None:
    assert not sample_ratio_check([5020, 4980], [0.5, 0.5]).flagged


def test_the_ratio_check_flags_a_split_far_from_the_declared_shares() -> None:
    check = sample_ratio_check([5300, 4700], [0.5, 0.5])
    assert check.flagged and check.p < 1e-6
