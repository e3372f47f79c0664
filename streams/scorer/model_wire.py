"""How a scoring call crosses to the model process and back: plain strings, not objects.

Every call is pickled on one side of `rtrank.streams.scorer.model_process`'s pipe and
unpickled on the other, and pickle pays per object: requests as `ScoreRequest`s and lists
as `RankedItem`s cost several times what one string of ids per list costs, on both sides
of the pipe, and the worker's side is its event loop, the pipeline's first limit
(docs/decisions.md, "Scoring calls cross the pipe as strings of ids").

`ScoreRequest` is defined here, with its packed form: the worker builds requests and the
model process reads them, and this module, unlike the model process's own, loads no torch.

The separator is NUL, which no id can hold: events and rank requests with it are
dead-lettered (`rtrank.streams.validation`), environment variables (settings) cannot carry
it, and the vocabulary's ids come from those.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtrank.streams.records import Event
from rtrank.streams.scorer.rerank import RankedItem

SEP = "\x00"


@dataclass(frozen=True)
class ScoreRequest:
    """One user's history (oldest first), the items never to return to them, and the
    experiment variant whose ranker answers them ("": none, or the list is interleaved)."""

    history: list[str]
    exclude: list[str]
    variant: str = ""
    # Who asks, for the encode cache (`rtrank.model.encode_cache`); "" = not cached: the
    # user, their partition (dropped with it), and the items ever appended to `history`.
    user_id: str = ""
    partition: int = -1
    events: int = 0


# (history, exclude), ids joined by SEP; variant; user_id, partition, events (encode cache)
PackedRequest = tuple[str, str, str, str, int, int]
PackedEvent = tuple[str, str, str, int]  # user_id, item_id, event_type, ts
# ids joined by SEP, scores, and (source, because, team) per item unless all are plain
# model items
PackedList = tuple[str, list[float], list[tuple[str, tuple[str, ...], str]] | None]


def join_ids(ids: list[str]) -> str:
    return SEP.join(ids)


def split_ids(text: str) -> list[str]:
    return text.split(SEP) if text else []


def pack_requests(requests: list[ScoreRequest]) -> list[PackedRequest]:
    return [
        (join_ids(r.history), join_ids(r.exclude), r.variant, r.user_id, r.partition, r.events)
        for r in requests
    ]


def unpack_requests(packed: list[PackedRequest]) -> list[ScoreRequest]:
    return [ScoreRequest(split_ids(h), split_ids(e), v, u, p, n) for h, e, v, u, p, n in packed]


def pack_events(events: list[Event]) -> list[PackedEvent]:
    """What the model process counts of an event (popularity); ``extra`` stays behind."""
    return [(e.user_id, e.item_id, e.event_type, e.ts) for e in events]


def unpack_events(packed: list[PackedEvent]) -> list[Event]:
    return [Event(u, i, t, ts) for u, i, t, ts in packed]


def pack_lists(lists: list[list[RankedItem]]) -> list[PackedList]:
    out: list[PackedList] = []
    for items in lists:
        plain = all(i.source == "model" and not i.because and not i.team for i in items)
        out.append(
            (
                join_ids([i.item_id for i in items]),
                [i.score for i in items],
                None if plain else [(i.source, i.because, i.team) for i in items],
            )
        )
    return out


def unpack_lists(packed: list[PackedList]) -> list[list[RankedItem]]:
    out = []
    for ids, scores, rest in packed:
        if rest is None:
            out.append([RankedItem(i, s) for i, s in zip(split_ids(ids), scores, strict=True)])
        else:
            out.append(
                [
                    RankedItem(i, s, source, because, team)
                    for i, s, (source, because, team) in zip(
                        split_ids(ids), scores, rest, strict=True
                    )
                ]
            )
    return out
