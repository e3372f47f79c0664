"""The model process: it serves what the scorer and re-ranker serve, with the worker's
catalogue changes, and a dead or hung process is an error, never a silent hang."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rtrank.model.checkpoint import CheckpointError, save_checkpoint
from rtrank.model.item_ann import IvfConfig
from rtrank.model.sasrec import SASRec, SASRecConfig
from rtrank.model.vocab import Vocabulary
from rtrank.streams.catalogue import Catalogue, ItemInfo
from rtrank.streams.records import Event
from rtrank.streams.scorer.model_process import ModelProcess, ModelProcessError
from rtrank.streams.scorer.model_wire import ScoreRequest
from rtrank.streams.scorer.ranker import Ranker
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.settings import Settings
from tests.unit.streams.scorer.test_scoring import requests, small_checkpoint

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    checkpoint = small_checkpoint(tmp_path_factory.mktemp("model"))
    return Settings(broker="memory://", checkpoint=checkpoint, device="cpu", top_k=5)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def model(settings: Settings, loop: asyncio.AbstractEventLoop) -> Iterator[ModelProcess]:
    model = ModelProcess(settings)
    loop.run_until_complete(model.start())
    yield model
    model.stop()


def test_a_started_process_reports_the_checkpoint_it_serves(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    model = ModelProcess(settings)
    try:
        report = loop.run_until_complete(model.start())
    finally:
        model.stop()
    assert (report.version, report.device, report.items) == (3, "cpu", 40)
    assert (report.applied, report.rejected) == ([], [])


def test_its_lists_are_those_of_the_scorer_and_ranker_in_this_process(
    settings: Settings, model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    fresh = [Event("u", "item-1", "view", 1_700_000_000_000)]
    versions, lists, _ = loop.run_until_complete(model.score(requests(), fresh, {}))
    scorer = Scorer.setup(settings.checkpoint, "cpu")
    ranker = Ranker(settings, Catalogue({}))
    ranker.observe(fresh)
    expected = ranker.rerank_lists(scorer, requests(), scorer.recommend(requests(), 50))
    assert versions == [3] * len(requests())
    assert [[i.item_id for i in items] for items in lists] == [
        [i.item_id for i in items] for items in expected
    ]


def test_a_score_call_reports_the_process_own_time_within_the_callers_wait(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    started = time.monotonic()
    _, _, report = loop.run_until_complete(model.score(requests(), [], {}))
    waited = time.monotonic() - started
    assert 0 < report.compute_s <= waited
    assert loop.run_until_complete(model.apply_updates({})).compute_s == 0.0


def test_a_catalogue_change_sent_with_a_call_applies_to_that_call(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    request = [ScoreRequest(["item-1"], ["item-1"])]
    _, before, _ = loop.run_until_complete(model.score(request, [], {}))
    top = before[0][0].item_id
    gone = {top: ItemInfo(top, available=False).to_json()}
    _, after, _ = loop.run_until_complete(model.score(request, [], gone))
    assert top not in [i.item_id for i in after[0]]
    loop.run_until_complete(model.score(request, [], {top: None}))  # back for other tests


def test_forgetting_revoked_partitions_drops_their_users_cached_in_the_process(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    calls = [
        ScoreRequest(["item-1"], [], "", user, partition, 1)
        for user, partition in (("p7-a", 7), ("p8-b", 8), ("p7-c", 7))
    ]
    _, _, report = loop.run_until_complete(model.score(calls, [], {}))
    assert report.cache_users >= 3 and report.cache_bytes > 0
    assert report.cache_lookups["miss"] >= 3
    assert loop.run_until_complete(model.forget_partitions({7})) == 2
    assert loop.run_until_complete(model.forget_partitions({7})) == 0
    assert loop.run_until_complete(model.forget_partitions({8})) == 1


def test_forgetting_users_drops_them_from_the_process_cache(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    calls = [ScoreRequest(["item-1"], [], "", user, 5, 1) for user in ("f-a", "f-b")]
    loop.run_until_complete(model.score(calls, [], {}))
    assert loop.run_until_complete(model.forget_users(["f-a"])) == 1
    assert loop.run_until_complete(model.forget_users(["f-a"])) == 0


def test_calls_made_together_each_get_their_own_answer_in_the_order_made(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    calls = [ScoreRequest(["item-1"], [], "", user, 6, 1) for user in ("o-a", "o-b", "o-c")]
    loop.run_until_complete(model.score(calls, [], {}))

    async def together() -> list:
        return await asyncio.gather(
            model.forget_users(["o-a", "o-b"]),
            model.apply_updates({}),
            model.forget_users(["o-a", "o-c"]),
            model.forget_partitions({6}),
        )

    dropped_first, report, dropped_then, dropped_last = loop.run_until_complete(together())
    assert (dropped_first, dropped_then, dropped_last) == (2, 1, 0)
    assert report.version == 3


def test_rank_orders_every_known_candidate_and_names_the_version(
    model: ModelProcess, loop: asyncio.AbstractEventLoop
) -> None:
    candidates = ["item-4", "item-7", "item-9"]
    version, ranked, filtered, _ = loop.run_until_complete(
        model.rank(["item-1", "item-2"], candidates, {})
    )
    assert version == 3
    assert sorted(i.item_id for i in ranked) == candidates
    assert filtered == []


def test_a_call_to_a_dead_process_raises_model_process_error(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    others = set(multiprocessing.active_children())
    model = ModelProcess(settings)
    try:
        loop.run_until_complete(model.start())
        for child in set(multiprocessing.active_children()) - others:
            child.kill()
            child.join()
        with pytest.raises(ModelProcessError, match="died"):
            loop.run_until_complete(model.apply_updates({}))
    finally:
        model.stop()


def test_a_call_waiting_when_the_process_dies_fails_at_once_not_at_its_bound(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    model = ModelProcess(settings.replace(model_call_timeout_s=60.0))

    async def kill_during_a_call(child: multiprocessing.Process) -> float:
        os.kill(child.pid, signal.SIGSTOP)  # the call waits for it
        call = asyncio.ensure_future(model.apply_updates({}))
        await asyncio.sleep(0.2)
        killed = time.monotonic()
        os.kill(child.pid, signal.SIGKILL)
        with pytest.raises(ModelProcessError, match="died"):
            await call
        return time.monotonic() - killed

    try:
        child = started_child(model, loop)
        assert loop.run_until_complete(kill_during_a_call(child)) < 10.0
    finally:
        model.stop()


def started_child(model: ModelProcess, loop: asyncio.AbstractEventLoop) -> multiprocessing.Process:
    """Start ``model`` and return its child process."""
    others = set(multiprocessing.active_children())
    loop.run_until_complete(model.start())
    (child,) = set(multiprocessing.active_children()) - others
    return child


def test_a_call_to_a_stopped_process_fails_within_its_bound_and_the_process_is_killed(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    model = ModelProcess(settings.replace(model_call_timeout_s=2.0))
    try:
        child = started_child(model, loop)
        os.kill(child.pid, signal.SIGSTOP)
        called = time.monotonic()
        with pytest.raises(ModelProcessError, match="did not answer within 2 s"):
            loop.run_until_complete(model.apply_updates({}))
        assert 2.0 <= time.monotonic() - called < 10.0
        assert gone_within(child, timeout_s=10.0), "the stopped model process still exists"
        with pytest.raises(ModelProcessError, match="did not answer within 2 s"):
            loop.run_until_complete(model.apply_updates({}))
    finally:
        model.stop()


def gone_within(child: multiprocessing.Process, timeout_s: float) -> bool:
    """True once ``child`` has exited and been reaped (reading its exit code reaps it); a
    stopped process never is."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.exitcode is not None or not Path(f"/proc/{child.pid}").exists():
            return True
        time.sleep(0.05)
    return False


def test_a_start_is_bounded_by_the_update_catch_up_plus_two_call_bounds(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    model = ModelProcess(settings.replace(update_catch_up_s=0.0, model_call_timeout_s=1.0))
    others = set(multiprocessing.active_children())

    async def start_a_stopped_process() -> None:
        starting = asyncio.ensure_future(model.start())
        await asyncio.sleep(0)  # the call is made: its process is spawned
        for child in set(multiprocessing.active_children()) - others:
            os.kill(child.pid, signal.SIGSTOP)
        await starting

    try:
        with pytest.raises(ModelProcessError, match="did not answer within 2 s"):
            loop.run_until_complete(start_a_stopped_process())
    finally:
        model.stop()


def test_a_hung_process_is_a_problem_only_once_a_call_is_past_its_bound(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    model = ModelProcess(settings.replace(model_call_timeout_s=2.0))
    seen: list[tuple[float, str | None]] = []  # (seconds since the call was made, problem)

    async def watch_a_call() -> None:
        call = asyncio.ensure_future(model.apply_updates({}))
        called = time.monotonic()
        while not call.done():
            seen.append((time.monotonic() - called, model.problem))
            await asyncio.sleep(0.05)
        seen.append((time.monotonic() - called, model.problem))
        with pytest.raises(ModelProcessError):
            call.result()

    try:
        child = started_child(model, loop)
        assert model.problem is None
        os.kill(child.pid, signal.SIGSTOP)
        loop.run_until_complete(watch_a_call())
    finally:
        model.stop()
    assert all(problem is None for since, problem in seen if since < 2.0)
    assert any(since > 1.0 for since, _ in seen)
    assert "did not answer within 2 s" in seen[-1][1]


def test_a_call_outstanding_past_its_bound_is_a_problem_before_it_gives_up(
    settings: Settings, loop: asyncio.AbstractEventLoop
) -> None:
    """As seen by ``/health`` on an event loop too busy to have run the call's timeout."""
    model = ModelProcess(settings.replace(model_call_timeout_s=1.0))

    async def block_the_loop_during_a_call() -> str | None:
        call = asyncio.ensure_future(model.apply_updates({}))
        await asyncio.sleep(0)  # the call is made
        time.sleep(1.5)  # the loop is busy past the call's bound
        problem = model.problem
        with pytest.raises(ModelProcessError):
            await call
        return problem

    try:
        child = started_child(model, loop)
        os.kill(child.pid, signal.SIGSTOP)
        problem = loop.run_until_complete(block_the_loop_during_a_call())
    finally:
        model.stop()
    assert problem is not None and problem.startswith("model process not answering for")


def test_a_checkpoint_that_cannot_load_fails_the_start_with_its_reason(
    settings: Settings, loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a checkpoint")
    model = ModelProcess(settings.replace(checkpoint=str(broken)))
    try:
        with pytest.raises(CheckpointError):
            loop.run_until_complete(model.start())
    finally:
        model.stop()


def test_the_item_index_setting_reaches_the_process_scorer(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    torch.manual_seed(0)
    items = [f"item-{n}" for n in range(2_000)]  # 51 cells: one probed finds other lists
    vocab = Vocabulary(items)
    checkpoint = str(tmp_path / "large.safetensors")
    model = SASRec(SASRecConfig(num_items=len(vocab), max_len=8, dim=16, dropout=0.0))
    save_checkpoint(checkpoint, model, vocab, version=3, data_fingerprint="test")
    settings = Settings(
        broker="memory://",
        checkpoint=checkpoint,
        device="cpu",
        item_index="ivf",
        item_index_probe=1,
    )
    process = ModelProcess(settings)
    try:
        loop.run_until_complete(process.start())
        _, lists, _ = loop.run_until_complete(process.score(requests(), [], {}))
    finally:
        process.stop()
    served = [[i.item_id for i in items] for items in lists]
    ranker = Ranker(settings, Catalogue({}))
    indexed = Scorer.setup(checkpoint, "cpu", item_index="ivf", ivf=IvfConfig(probe=1))
    exact = Scorer.setup(checkpoint, "cpu")
    for scorer, same in ((indexed, True), (exact, False)):
        expected = ranker.rerank_lists(scorer, requests(), scorer.recommend(requests(), 50))
        assert (served == [[i.item_id for i in items] for items in expected]) is same
