"""An experiment, declared in one file, and which variant each user is in.

    experiment = load_experiment(settings.experiment_file)   # None when no file is set
    experiment.variant_of("u1").name                           # the same on every worker

The file (``RTRANK_EXPERIMENT_FILE``; JSON, or TOML when it ends in ``.toml``):

    {"name": "mmr-2026-12", "salt": "s1", "mode": "ab",
     "variants": [
       {"name": "control", "share": 0.5},
       {"name": "diverse", "share": 0.5, "overrides": {"mmr_lambda": 0.7}}]}

- ``mode``: ``ab`` (each user sees one variant's lists) or ``interleave`` (two variants;
  every list is a team-draft interleaving of both, `rtrank.streams.experiments.interleave`).
- The first variant is the control; ``share``: its weight in the assignment (normalised
  over the variants); ``overrides``: settings that differ for it, by field name
  (``RERANK_OVERRIDES``: the checkpoint and the re-rank settings), in either form
  `rtrank.streams.settings.Settings` accepts; ``online_learning``: whether it serves the
  trainer's model updates (false: it serves its checkpoint as loaded, frozen).
- At most one variant learns online, and it serves ``RTRANK_CHECKPOINT`` (the model the
  trainer starts from): one trainer, one learning arm, whose examples alone it learns from
  (docs/decisions.md, "Experiments: one learning arm"). In ``interleave`` mode no variant
  learns online: every list mixes both rankers, so no example belongs to one of them.

Assignment is a stable hash of the salt and the user id (blake2b), no state: the same
variant on every worker, after restarts and rebalances; a new salt reshuffles the users.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RERANK_OVERRIDES = frozenset(
    {
        "checkpoint",
        "top_k",
        "rerank_candidates",
        "mmr_lambda",
        "max_per_category",
        "category_boosts",
        "fresh_boost",
        "explore_slots",
    }
)
INTERLEAVED = "interleaved"  # the variant every list of an interleave experiment carries
MAX_NAME = 64


class ExperimentError(ValueError):
    """A malformed experiment file; the message is one line saying what is wrong."""


@dataclass(frozen=True)
class Variant:
    name: str
    share: float  # normalised: the variants' shares sum to 1
    overrides: dict[str, Any] = field(default_factory=dict)
    online_learning: bool = False


@dataclass(frozen=True)
class Experiment:
    name: str
    salt: str
    mode: Literal["ab", "interleave"]
    variants: tuple[Variant, ...]

    @property
    def control(self) -> Variant:
        return self.variants[0]

    @property
    def learning_arm(self) -> str:
        """The variant that learns online; "" when every variant is frozen."""
        return next((v.name for v in self.variants if v.online_learning), "")

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def variant_of(self, user_id: str) -> Variant:
        """The user's variant: where blake2b(salt, user) falls among the cumulative shares."""
        point = bucket(self.salt, user_id)
        total = 0.0
        for v in self.variants:
            total += v.share
            if point < total:
                return v
        return self.variants[-1]  # rounding of the shares' sum

    def label_of(self, user_id: str) -> str:
        """The variant a user's lists carry: theirs in ``ab``, `INTERLEAVED` otherwise."""
        return self.variant_of(user_id).name if self.mode == "ab" else INTERLEAVED


def bucket(salt: str, user_id: str) -> float:
    """A user's point in [0, 1), uniform over users and fixed for a salt."""
    digest = hashlib.blake2b(
        user_id.encode(), digest_size=8, key=salt.encode()[:64], person=b"rtrank-exp"
    ).digest()
    return int.from_bytes(digest, "big") / 2**64


def load_experiment(path: str | Path) -> Experiment | None:
    """The experiment in ``path``; None for an empty path (no experiment).

    Raises:
        ExperimentError: unreadable or malformed; one line.
    """
    if not str(path):
        return None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ExperimentError(f"cannot read {path}: {e}") from None
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        raise ExperimentError(f"{path} is not valid {kind}: {e}") from None
    return parse_experiment(raw)


def parse_experiment(raw: Any) -> Experiment:
    """An `Experiment` from its decoded file (checked as `load_experiment` says)."""
    if not isinstance(raw, dict):
        raise ExperimentError("an experiment is an object with name, salt, mode, variants")
    unknown = set(raw) - {"name", "salt", "mode", "variants"}
    if unknown:
        raise ExperimentError(f"unknown field {sorted(unknown)[0]!r}")
    name = _name(raw.get("name"), "name")
    salt = raw.get("salt")
    if not isinstance(salt, str) or not salt or len(salt.encode()) > 64:
        raise ExperimentError("salt must be a string of 1-64 bytes")
    mode = raw.get("mode", "ab")
    if mode not in ("ab", "interleave"):
        raise ExperimentError(f"mode must be 'ab' or 'interleave', not {mode!r}")
    entries = raw.get("variants")
    if not isinstance(entries, list) or len(entries) < 2:
        raise ExperimentError("variants must be a list of at least two")
    variants = [_variant(v) for v in entries]
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ExperimentError("variant names must be unique")
    if INTERLEAVED in names:
        raise ExperimentError(f"{INTERLEAVED!r} is not a variant name (interleaved lists carry it)")
    learning = [v for v in variants if v.online_learning]
    if mode == "interleave":
        if len(variants) != 2:
            raise ExperimentError("an interleave experiment has exactly two variants")
        if learning:
            raise ExperimentError(
                "no variant of an interleave experiment learns online (each list mixes both)"
            )
    if len(learning) > 1:
        raise ExperimentError("at most one variant learns online (one trainer, one arm)")
    if learning and "checkpoint" in learning[0].overrides:
        raise ExperimentError(
            f"variant {learning[0].name!r} learns online: it serves RTRANK_CHECKPOINT, "
            "which the trainer starts from (no checkpoint override)"
        )
    total = sum(v.share for v in variants)
    normalised = tuple(
        Variant(v.name, v.share / total, v.overrides, v.online_learning) for v in variants
    )
    return Experiment(name, salt, mode, normalised)


def _name(value: Any, what: str) -> str:
    ok = isinstance(value, str) and 0 < len(value) <= MAX_NAME
    if not ok or any(not (c.isalnum() or c in "-_.") for c in value):
        raise ExperimentError(f"{what} must be 1-{MAX_NAME} letters, digits, '-', '_' or '.'")
    return value


def _variant(raw: Any) -> Variant:
    if not isinstance(raw, dict):
        raise ExperimentError("each variant is an object with name, share, overrides")
    name = _name(raw.get("name"), "a variant's name")
    unknown = set(raw) - {"name", "share", "overrides", "online_learning"}
    if unknown:
        raise ExperimentError(f"variant {name!r}: unknown field {sorted(unknown)[0]!r}")
    share = raw.get("share", 1.0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1e9:
        raise ExperimentError(f"variant {name!r}: share must be a number > 0")
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ExperimentError(f"variant {name!r}: overrides must be an object")
    bad = sorted(set(overrides) - RERANK_OVERRIDES)
    if bad:
        raise ExperimentError(
            f"variant {name!r}: {bad[0]!r} cannot be overridden "
            f"(only {', '.join(sorted(RERANK_OVERRIDES))})"
        )
    learns = raw.get("online_learning", False)
    if not isinstance(learns, bool):
        raise ExperimentError(f"variant {name!r}: online_learning must be true or false")
    return Variant(name, float(share), dict(overrides), learns)
