"""What the benchmarks' recommendation reader times: each list from the send of the event it
answers."""

from __future__ import annotations

from rtrank.streams.bench.recommendation_reader import RecommendationReader
from rtrank.streams.settings import Settings


def reader_receiving(*records: tuple[dict, float]) -> RecommendationReader:
    """A reader whose first poll returns ``records`` (list, receive time) and later polls
    nothing: no broker needed for what ``collect_while`` makes of them."""
    reader = RecommendationReader(Settings())
    polls = [list(records)]
    reader.poll = lambda timeout_ms=200: polls.pop() if polls else []
    return reader


def answering(sent_ms: float) -> dict:
    return {"based_on": {"ts": sent_ms}}


def test_each_list_is_timed_from_the_send_of_the_event_it_answers() -> None:
    reader = reader_receiving((answering(1_000), 1_030.0), (answering(2_000), 2_045.0))
    assert reader.collect_while(lambda: False, idle_s=0.05) == [30.0, 45.0]
