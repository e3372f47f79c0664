"""The statistics of an experiment report: means over events with users as the unit.

A user's events are not independent (one user's next items follow each other), and users,
not events, are what the experiment assigns. So every mean over events is a ratio of two
sums over users (the metric's sum and the events' count per user) and its variance comes
from the delta method over users (Deng, Knoblich and Lu, "Applying the Delta Method in
Metric Analytics", 2018): the normal approximation of the user-clustered estimate, good for
the hundreds of users and more an experiment has. Confidence intervals are 95%, two-sided;
p-values two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A mean over events, its standard error (users as the unit) and 95% interval."""

    mean: float
    se: float
    users: int
    events: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.mean - Z95 * self.se, self.mean + Z95 * self.se)


def ratio_estimate(sums: Sequence[float], counts: Sequence[float]) -> Estimate:
    """Σ sums / Σ counts over users (``sums[u]``: the metric summed over user u's events,
    ``counts[u]``: how many), with the delta-method standard error."""
    users = len(counts)
    events = sum(counts)
    if users == 0 or events == 0:
        return Estimate(math.nan, math.nan, users, int(events))
    mean = sum(sums) / events
    if users < 2:
        return Estimate(mean, math.nan, users, int(events))
    per_user = events / users
    residuals = sum((s - mean * c) ** 2 for s, c in zip(sums, counts, strict=True))
    se = math.sqrt(residuals / (users - 1) / users) / per_user
    return Estimate(mean, se, users, int(events))


@dataclass(frozen=True)
class Difference:
    """``treatment - control`` of two independent groups' estimates."""

    diff: float
    se: float
    p: float

    @property
    def ci(self) -> tuple[float, float]:
        return (self.diff - Z95 * self.se, self.diff + Z95 * self.se)


def difference(treatment: Estimate, control: Estimate) -> Difference:
    """The difference of means, its interval and a two-sided z-test p-value (users are
    assigned at random, so the two groups are independent)."""
    diff = treatment.mean - control.mean
    se = math.hypot(treatment.se, control.se)
    return Difference(diff, se, two_sided_p(diff, se, 0.0))


def two_sided_p(value: float, se: float, null: float) -> float:
    """P(|Z| >= |value - null| / se) under the normal approximation."""
    if not se > 0:
        return math.nan if value == null or math.isnan(value) else 0.0
    return math.erfc(abs(value - null) / se / math.sqrt(2))


@dataclass(frozen=True)
class RatioCheck:
    """Sample-ratio-mismatch check: chi-square of the users per variant against their
    declared shares."""

    chi2: float
    df: int
    p: float
    flagged: bool  # p below `SRM_ALPHA`: the assignment is not what was declared


SRM_ALPHA = 0.001  # the usual threshold: a false alarm in one experiment of a thousand


def sample_ratio_check(observed: Sequence[int], shares: Sequence[float]) -> RatioCheck:
    """Pearson's chi-square of ``observed`` users per variant against ``shares`` (summing
    to 1), with len - 1 degrees of freedom."""
    total = sum(observed)
    df = len(observed) - 1
    if total == 0:
        return RatioCheck(math.nan, df, math.nan, False)
    chi2 = sum((o - total * s) ** 2 / (total * s) for o, s in zip(observed, shares, strict=True))
    p = chi2_sf(chi2, df)
    return RatioCheck(chi2, df, p, p < SRM_ALPHA)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with integer ``df`` >= 1 (closed forms: no
    SciPy, which rtrank does not depend on)."""
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= half / i
            total += term
        return min(1.0, math.exp(-half) * total)
    p = math.erfc(math.sqrt(half))
    term = math.sqrt(half) * math.exp(-half) * 2 / math.sqrt(math.pi)
    for i in range(1, (df + 1) // 2):
        p += term
        term *= half / (i + 0.5)
    return min(1.0, p)
