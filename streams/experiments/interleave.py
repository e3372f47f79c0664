"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008) of two rankers' lists.

    merged = team_draft(list_a, list_b, k=10, rng=random.Random(0))   # [(item, 0 | 1), ...]

The teams take turns like captains picking players: the team with fewer picks so far picks
next (a coin decides a tie), and picks its best-ranked item not in the list yet. Each item
is credited to the team that placed it; the user's next item decides the event: a win for
its team when it is in the list, no preference otherwise. Over many events the share of
wins estimates which ranker users prefer, from one list per event and the same users.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def team_draft(
    a: Sequence[str], b: Sequence[str], k: int, rng: random.Random
) -> list[tuple[str, int]]:
    """Up to ``k`` items of ``a`` and ``b`` (each best first), each with its team (0: a,
    1: b); shorter only when the two lists together hold fewer than ``k`` distinct items."""
    lists = (a, b)
    picks = [0, 0]
    nexts = [0, 0]  # per team: the position of its next candidate
    taken: set[str] = set()
    out: list[tuple[str, int]] = []
    while len(out) < k:
        for team in (0, 1):  # skip what the other team took already
            while nexts[team] < len(lists[team]) and lists[team][nexts[team]] in taken:
                nexts[team] += 1
        left = [t for t in (0, 1) if nexts[t] < len(lists[t])]
        if not left:
            break
        if len(left) == 1:
            team = left[0]
        elif picks[0] != picks[1]:
            team = 0 if picks[0] < picks[1] else 1
        else:
            team = rng.randrange(2)
        item = lists[team][nexts[team]]
        taken.add(item)
        picks[team] += 1
        out.append((item, team))
    return out
