"""The model process's side of `rtrank.streams.scorer.model_process`: what it serves and
how it answers.

The worker's process never imports this module, and so never loads torch, faiss or the
model: the child imports it at its start (``model_process._child``). The worker's side
names each call (`CALLS`) and sends its arguments in the wire's plain forms
(`rtrank.streams.scorer.model_wire`); the child answers in the calls' order.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from rtrank.model.update_error import UpdateError
from rtrank.model.updates import Snapshot
from rtrank.streams.catalogue import Catalogue
from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.records import Event
from rtrank.streams.scorer.arms import Arms
from rtrank.streams.scorer.model_process import HEADER, ModelReport, frame
from rtrank.streams.scorer.model_wire import (
    PackedEvent,
    PackedList,
    PackedRequest,
    ScoreRequest,
    pack_lists,
    unpack_events,
    unpack_requests,
)
from rtrank.streams.scorer.ranker import Ranker
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.scorer.scoring import Scorer
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.update_feed import UpdateFeed

PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent dies


class ServedModel:
    """What the child process serves: model, re-ranker, catalogue copy, update feed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scorer = Scorer.from_settings(settings)
        self.ranker = Ranker(settings, Catalogue({}))
        experiment = load_experiment(settings.experiment_file)
        self.arms = Arms(settings, experiment, self.scorer, self.ranker) if experiment else None
        self.feed = UpdateFeed(settings, self._rejected)
        self._applied: list[tuple[str, int]] = []
        self._rejections: list[tuple[str, str]] = []

    def catch_up(self) -> bool:
        """Start reading model updates, wait up to ``update_catch_up_s`` until what was on
        the topic is read, and apply it. False when the wait timed out."""
        if self.settings.broker.startswith("memory://"):
            return True
        self.feed.start()
        caught_up = self.feed.caught_up.wait(self.settings.update_catch_up_s)
        self.apply_updates()
        return caught_up

    def catch_up_with(self, changes: dict[str, Any]) -> None:
        """Take the worker's catalogue changes, then the model updates read meanwhile."""
        self.ranker.catalogue.apply(changes)
        self.apply_updates()

    def apply_updates(self) -> None:
        for update in self.feed.drain():
            try:
                self.scorer.apply(update)
            except UpdateError as e:
                self._rejected(e.reason, str(e))
                continue
            kind = "snapshot" if isinstance(update, Snapshot) else "delta"
            self._applied.append((kind, self.scorer.version))

    def score(
        self, requests: list[ScoreRequest], fresh: list[Event]
    ) -> tuple[list[int], list[list[RankedItem]]]:
        """One list per request and the version that scored it: an experiment's variants
        may serve different models (`rtrank.streams.scorer.arms`)."""
        self.ranker.observe(fresh)
        if self.arms is not None:
            return self.arms.score(requests)
        top_n = self.scorer.recommend(requests, self.ranker.candidates)
        lists = self.ranker.rerank_lists(self.scorer, requests, top_n)
        return [self.scorer.version] * len(requests), lists

    def rank(
        self, history: list[str], candidates: list[str]
    ) -> tuple[int, list[RankedItem], list[dict]]:
        ranked, filtered = self.ranker.rank_candidates(self.scorer, history, candidates)
        return self.scorer.version, ranked, filtered

    def forget_partitions(self, partitions: set[int]) -> int:
        """Drop the users of ``partitions`` from every encode cache (the served model's and
        each frozen variant's); returns how many entries were dropped."""
        return sum(s.forget_partitions(partitions) for s in self._scorers())

    def forget_users(self, users: list[str]) -> int:
        """Drop ``users`` (forgotten) from every encode cache; returns how many entries
        held them."""
        return sum(s.forget_users(users) for s in self._scorers())

    def report(self) -> ModelReport:
        """The state now, with the updates applied and rejected since the last report."""
        report = ModelReport(
            self.scorer.version,
            str(self.scorer.device),
            len(self.scorer.vocab) - 1,
            self._applied,
            self._rejections,
        )
        caches = [s.cache for s in self._scorers()]
        report.cache_lookups = {
            "hit": sum(c.counts.hits for c in caches),
            "miss": sum(c.counts.misses for c in caches),
            "restart": sum(c.counts.restarts for c in caches),
        }
        report.cache_users = sum(len(c) for c in caches)
        report.cache_bytes = sum(c.bytes for c in caches)
        self._applied, self._rejections = [], []
        return report

    def _scorers(self) -> list[Scorer]:
        """Every model this process serves: the updated one and each frozen variant's."""
        return [self.scorer, *(self.arms.frozen if self.arms is not None else ())]

    def _rejected(self, reason: str, detail: str) -> None:
        self._rejections.append((reason, detail))


# The child's one ServedModel: the calls are module-level functions (`CALLS`), so the
# object they serve from is held here, in the child process only.
_served: ServedModel | None = None


def serve(sock: socket.socket, log_level: str) -> None:
    """The child's loop: read a call, run it, answer it; until the worker's end closes."""
    _prepare_child(log_level)
    try:
        while (call := _read_frame(sock)) is not None:
            name, args = pickle.loads(call)
            try:
                answer = (True, CALLS[name](*args))
            except Exception as e:  # the caller's to handle, as if raised there
                answer = (False, e)
            try:
                message = frame(answer)
            except (pickle.PicklingError, TypeError, AttributeError) as e:
                message = frame((False, RuntimeError(f"{answer[1]!r} (not sent whole: {e})")))
            sock.sendall(message)
    except OSError:  # the worker's end is gone: nobody is left to answer
        return


def _read_frame(sock: socket.socket) -> bytearray | None:
    """One frame's pickle; None once the other end closed."""
    header = _read_exactly(sock, HEADER.size)
    return None if header is None else _read_exactly(sock, HEADER.unpack(header)[0])


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    data = bytearray(size)
    view, got = memoryview(data), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return data


def _prepare_child(log_level: str) -> None:
    """Child start-up: log like the worker, leave Ctrl-C to the worker, die with it."""
    logging.basicConfig(
        level=log_level.upper(), format="[%(asctime)s] [%(process)d] model: %(message)s"
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _load(settings: Settings) -> tuple[bool, ModelReport]:
    global _served
    _served = ServedModel(settings)
    caught_up = _served.catch_up()
    # As in the worker: torch and the model live as long as the process, so the cyclic
    # collector's full passes need not walk them (~208k objects) during a batch, where a
    # full pass made the slowest batch several times slower.
    gc.freeze()
    return caught_up, _served.report()


def _score(
    requests: list[PackedRequest], fresh: list[PackedEvent], changes: dict[str, Any]
) -> tuple[list[int], list[PackedList], ModelReport]:
    started = time.perf_counter()
    _served.catch_up_with(changes)
    versions, lists = _served.score(unpack_requests(requests), unpack_events(fresh))
    packed, report = pack_lists(lists), _served.report()
    report.compute_s = time.perf_counter() - started
    return versions, packed, report


def _rank(
    history: list[str], candidates: list[str], changes: dict[str, Any]
) -> tuple[int, list[RankedItem], list[dict], ModelReport]:
    _served.ranker.catalogue.apply(changes)
    version, ranked, filtered = _served.rank(history, candidates)
    return version, ranked, filtered, _served.report()


def _forget_partitions(partitions: set[int]) -> int:
    return _served.forget_partitions(partitions)


def _forget_users(users: list[str]) -> int:
    return _served.forget_users(users)


def _apply_updates(changes: dict[str, Any]) -> ModelReport:
    _served.catch_up_with(changes)
    return _served.report()


CALLS: dict[str, Callable[..., Any]] = {
    "load": _load,
    "score": _score,
    "rank": _rank,
    "apply_updates": _apply_updates,
    "forget_partitions": _forget_partitions,
    "forget_users": _forget_users,
}
