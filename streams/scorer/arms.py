"""An experiment's variants in the model process: one model and one re-ranker per variant.

    arms = Arms(settings, experiment, base_scorer, base_ranker)
    versions, lists = arms.score(requests)       # after base_ranker.observe(fresh)

- The variant that learns online (`Experiment.learning_arm`) scores with ``base_scorer``,
  the model the `rtrank.streams.trainer.update_feed.UpdateFeed` updates. Every other
  variant has a `Scorer` of its own, loaded from its checkpoint (``RTRANK_CHECKPOINT``
  unless it overrides it) and never updated: frozen. So the trainer's versions reach the
  learning arm only, and the trainer learns from that arm's examples only
  (`rtrank.streams.trainer.online_trainer`): one arm's traffic never trains another's model.
  A frozen variant has an encode cache of its own (``RTRANK_ENCODE_CACHE_MB`` each), which
  the model process empties of a revoked partition's or a forgotten user's entries as it
  does the learning arm's (`Arms.frozen`).
- Each variant re-ranks with its own settings (its overrides: λ, boosts, exploration, K),
  sharing the catalogue and the popularity counts with ``base_ranker``: popularity is the
  whole stream's.
- ``ab``: a request is answered by its variant (``ScoreRequest.variant``); ``interleave``:
  both variants rank every request and `rtrank.streams.experiments.interleave.team_draft`
  merges them, each item carrying the variant that placed it (``RankedItem.team``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rtrank.streams.experiments.definition import Experiment
from rtrank.streams.experiments.interleave import team_draft
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.ranker import Ranker
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.settings import Settings


@dataclass
class Arm:
    scorer: Scorer
    ranker: Ranker

    def lists(self, requests: Sequence[ScoreRequest]) -> list[list[RankedItem]]:
        top_n = self.scorer.recommend(list(requests), self.ranker.candidates)
        return self.ranker.rerank_lists(self.scorer, requests, top_n)


class Arms:
    """The variants' scorers and rankers; one caller at a time, like the model process."""

    def __init__(
        self, settings: Settings, experiment: Experiment, base_scorer: Scorer, base_ranker: Ranker
    ) -> None:
        self.experiment = experiment
        self.k = settings.top_k
        self.rng = random.Random(settings.seed)  # the team-draft coin
        self.arms: dict[str, Arm] = {}
        self.frozen: list[Scorer] = []  # the variants' own models, each with its encode cache
        for v in experiment.variants:
            arm_settings = settings.replace(**v.overrides)
            scorer = base_scorer
            if not v.online_learning:
                scorer = Scorer.from_settings(arm_settings)
                self.frozen.append(scorer)
            ranker = Ranker(arm_settings, base_ranker.catalogue)
            ranker.trending = base_ranker.trending
            self.arms[v.name] = Arm(scorer, ranker)

    def score(self, requests: list[ScoreRequest]) -> tuple[list[int], list[list[RankedItem]]]:
        """One list per request (same order) and the version of the model that scored it."""
        if self.experiment.mode == "interleave":
            return self._interleaved(requests)
        versions: list[int] = [0] * len(requests)
        lists: list[list[RankedItem]] = [[] for _ in requests]
        for name, arm in self.arms.items():
            mine = [n for n, r in enumerate(requests) if r.variant == name]
            if not mine:
                continue
            for n, items in zip(mine, arm.lists([requests[n] for n in mine]), strict=True):
                versions[n], lists[n] = arm.scorer.version, items
        return versions, lists

    def _interleaved(
        self, requests: list[ScoreRequest]
    ) -> tuple[list[int], list[list[RankedItem]]]:
        (name_a, a), (name_b, b) = self.arms.items()
        names = (name_a, name_b)
        out = []
        for list_a, list_b in zip(a.lists(requests), b.lists(requests), strict=True):
            by_id = {i.item_id: i for i in list_b} | {i.item_id: i for i in list_a}
            merged = team_draft(
                [i.item_id for i in list_a], [i.item_id for i in list_b], self.k, self.rng
            )
            out.append([replace(by_id[item], team=names[team]) for item, team in merged])
        return [a.scorer.version] * len(requests), out
