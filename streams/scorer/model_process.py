"""The served model in a process of its own, next to the worker's event loop.

Why a process and not a thread: scoring is PyTorch calls and the re-rank's Python, and in a
thread of the worker every one of them waits for the one GIL that the event loop and
Faust's consumer thread hold most of the time under load; with this process a backlog
drains about twice as fast (`rtrank bench pipeline`, docs/decisions.md).

    model = ModelProcess(settings)
    report = await model.start()                         # load, read model updates
    versions, lists, report = await model.score(requests, fresh, changes)  # a version per list
    version, ranked, filtered, report = await model.rank(history, candidates, changes)
    report = await model.apply_updates(changes)          # between batches, when idle
    await model.forget_partitions(partitions)            # revoked: drop their cached users
    await model.forget_users(users)                      # forgotten: drop them too
    model.stop()

Contract:

- One child process serves one call at a time, in the order the calls were made. A model
  update is applied at the start of a call, so it never lands mid-batch, and every list
  carries the version that scored it.
- The child owns the `rtrank.streams.scorer.scoring.Scorer`, the
  `rtrank.streams.scorer.ranker.Ranker` (popularity, re-rank rules) and the
  `rtrank.streams.trainer.update_feed.UpdateFeed` (it reads the model-updates topic
  itself, so snapshots never cross the process boundary). The catalogue lives in the
  worker's ``item_to_info`` table; each call carries the entries that changed since the
  previous call (`rtrank.streams.catalogue.ChangedItems`) and the child applies them first.
- Each call returns a `ModelReport`: what the worker's metrics, logs and ``/health`` need.
- The child dies with the worker (Linux: a parent-death signal); should it die first, the
  next call raises `ModelProcessError` and the worker must stop: its un-acked events are
  redelivered to whichever worker takes the partitions.
- Every call is bounded: one not answered within ``model_call_timeout_s`` of being made (the
  wait behind earlier calls included) is taken for a hung child, stopped or deadlocked
  rather than dead. The child is then killed (SIGKILL ends a stopped process too) and the
  call raises `ModelProcessError`, as for a child that died. `start` has a bound of its
  own: ``update_catch_up_s`` (the longest it waits for the model-updates topic) plus two
  call bounds, one for loading the checkpoint and one for applying what it read.
- `problem` says, for ``/health``, why the process cannot serve: it died, it was killed
  for not answering, or a call has been outstanding longer than its bound right now.

The calls go over a socket pair that the event loop reads and writes itself: each call is
one length-prefixed pickle (`frame`) of a function of this module and its arguments, each
answer one of ``(True, result)`` or ``(False, exception)``, in the calls' order. No thread
of the worker takes part: a `concurrent.futures.ProcessPoolExecutor` moved each call
through a manager and a feeder thread, whose turns at the GIL held the event loop up and
cost it about 0.5 ms a call (docs/decisions.md, "The model process's socket").
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rtrank.model.updates import Snapshot, UpdateError
from rtrank.streams.catalogue import Catalogue
from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.records import Event
from rtrank.streams.scorer.arms import Arms
from rtrank.streams.scorer.model_wire import (
    PackedEvent,
    PackedList,
    PackedRequest,
    pack_events,
    pack_lists,
    pack_requests,
    unpack_events,
    unpack_lists,
    unpack_requests,
)
from rtrank.streams.scorer.ranker import Ranker
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.scorer.scoring import Scorer, ScoreRequest
from rtrank.streams.settings import Settings
from rtrank.streams.trainer.update_feed import UpdateFeed

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl option: signal this process when its parent dies
HEADER = struct.Struct("!Q")  # a frame's length, ahead of its pickle
STOP_WAIT_S = 5.0  # how long `ModelProcess.stop` waits for the child to end before killing it


class ModelProcessError(RuntimeError):
    """The model process is gone (died, or killed for not answering); the worker cannot
    answer any more."""


@dataclass
class ModelReport:
    """The served model's state after a call, and what happened to updates during it."""

    version: int
    device: str
    items: int  # items the model can recommend (vocabulary minus padding)
    applied: list[tuple[str, int]] = field(default_factory=list)  # (snapshot|delta, version)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (reason, detail)
    # the encode caches (the served model's and each frozen variant's together): users
    # encoded per outcome since the process started, users, bytes
    cache_lookups: dict[str, int] = field(default_factory=dict)
    cache_users: int = 0
    cache_bytes: int = 0
    compute_s: float = 0.0  # a score call's own seconds in this process (0 for other calls)


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


# The child's one ServedModel: the calls name module-level functions, so the object they
# serve from is held here, in the child process only.
_served: ServedModel | None = None


def frame(message: Any) -> bytes:
    """``message`` as it crosses the socket: its pickle's length, then the pickle."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _serve(sock: socket.socket, log_level: str) -> None:
    """The child's loop: read a call, run it, answer it; until the worker's end closes."""
    _prepare_child(log_level)
    try:
        while (call := _read_frame(sock)) is not None:
            fn, args = pickle.loads(call)
            try:
                answer = (True, fn(*args))
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


class ModelProcess:
    """The worker's handle on its model process (calls from the event loop only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._child: multiprocessing.process.BaseProcess | None = None
        self._socket: socket.socket | None = None  # the worker's end
        self._writer: asyncio.StreamWriter | None = None
        self._answers: asyncio.Task | None = None  # reads the child's answers
        self._waiting: deque[asyncio.Future] = deque()  # calls sent, answered in this order
        self._outstanding: dict[int, tuple[float, float]] = {}  # call -> (made at, bound)
        self._calls = 0
        self._failure: str | None = None

    @property
    def start_timeout_s(self) -> float:
        """The bound of `start`: the update catch-up plus a call's bound to load the
        checkpoint and another to apply what was read."""
        return self.settings.update_catch_up_s + 2 * self.settings.model_call_timeout_s

    @property
    def problem(self) -> str | None:
        """Why this process cannot serve (for ``/health``), or None while it can: it died or
        was killed, or a call has been outstanding longer than its bound."""
        if self._failure is not None:
            return self._failure
        now = time.monotonic()
        late = [now - made for made, bound in self._outstanding.values() if now - made > bound]
        if late:
            return f"model process not answering for {max(late):.0f} s"
        return None

    async def start(self) -> ModelReport:
        """Load the model and catch up with its updates, within `start_timeout_s`.

        Raises:
            rtrank.model.checkpoint.CheckpointError: the checkpoint cannot be loaded.
            ValueError: the device is unknown or unavailable.
            ModelProcessError: the process died or did not answer in time.
        """
        self._socket, theirs = socket.socketpair()
        # spawned, not forked: the worker has threads. A daemon: ended at the worker's exit.
        self._child = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(theirs, self.settings.log_level), name="rtrank-model", daemon=True
        )
        self._child.start()
        theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=self._socket)
        self._answers = asyncio.ensure_future(self._read_answers(reader))
        caught_up, report = await self._call(_load, self.settings, bound=self.start_timeout_s)
        if not caught_up:
            log.warning(
                "model updates not read within %.0fs; serving what there is",
                self.settings.update_catch_up_s,
            )
        return report

    async def score(
        self, requests: list[ScoreRequest], fresh: list[Event], changes: dict[str, Any]
    ) -> tuple[list[int], list[list[RankedItem]], ModelReport]:
        """Lists for ``requests`` (same order), each with the version that scored it, after
        counting ``fresh`` in the popularity."""
        versions, lists, report = await self._call(
            _score, pack_requests(requests), pack_events(fresh), changes
        )
        return versions, unpack_lists(lists), report

    async def rank(
        self, history: list[str], candidates: list[str], changes: dict[str, Any]
    ) -> tuple[int, list[RankedItem], list[dict], ModelReport]:
        """A caller's candidates ordered for ``history``, and those filtered out."""
        return await self._call(_rank, history, candidates, changes)

    async def apply_updates(self, changes: dict[str, Any]) -> ModelReport:
        return await self._call(_apply_updates, changes)

    async def forget_partitions(self, partitions: set[int]) -> int:
        """Drop what the process keeps for the users of ``partitions`` (their encode cache
        entries), once every call made before this one has run: a batch in flight cannot
        put them back. Returns how many users were dropped."""
        return await self._call(_forget_partitions, partitions)

    async def forget_users(self, users: list[str]) -> int:
        """Drop what the process keeps for ``users``, who were forgotten (their encode
        cache entries), once every call made before this one has run. Returns how many of
        them it held."""
        return await self._call(_forget_users, users)

    def stop(self) -> None:
        """Shut the socket: the child ends after the call it is running; one that has not
        ended within `STOP_WAIT_S` (stopped, or hung) is killed. The socket is shut here,
        not left to its transport, which closes it only when the event loop runs next."""
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed (the child died first)
                pass
        if self._writer is not None:
            self._writer.close()
        if self._answers is not None:
            self._answers.cancel()
        if self._child is not None and self._child.pid is not None:
            self._child.join(STOP_WAIT_S)
            if self._child.exitcode is None:
                self._child.kill()
                self._child.join()
        self._fail("the model process was stopped")

    async def _call(self, fn: Any, *args: Any, bound: float | None = None) -> Any:
        """``fn(*args)`` in the child, raising `ModelProcessError` when it dies or does not
        answer within ``bound`` (``model_call_timeout_s`` by default)."""
        if self._failure is not None:
            raise ModelProcessError(self._failure)
        bound = self.settings.model_call_timeout_s if bound is None else bound
        self._calls += 1
        call = self._calls
        self._outstanding[call] = (time.monotonic(), bound)
        message = frame((fn, args))  # before the call waits: a call not sent waits for nothing
        answer = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        try:
            self._writer.write(message)
            ok, value = await asyncio.wait_for(answer, bound)
        except TimeoutError:
            self._kill()
            self._fail(f"the model process did not answer within {bound:.0f} s (killed)")
            raise ModelProcessError(self._failure) from None
        finally:
            del self._outstanding[call]
        if not ok:
            raise value
        return value

    async def _read_answers(self, reader: asyncio.StreamReader) -> None:
        """Hand each answer to the oldest call waiting (the child answers in call order);
        once the socket closes, the process is gone and every call waiting fails."""
        try:
            while True:
                size = HEADER.unpack(await reader.readexactly(HEADER.size))[0]
                answer = pickle.loads(await reader.readexactly(size))
                waiting = self._waiting.popleft()
                if not waiting.done():  # not given up on (its bound passed, its caller gone)
                    waiting.set_result(answer)
        except (asyncio.IncompleteReadError, OSError) as e:
            exit_code = self._child.exitcode if self._child is not None else None
            self._fail(f"the model process died (exit code {exit_code}; {e!r})")
        except Exception as e:  # an answer not read whole: the ones after it cannot be paired
            self._kill()
            self._fail(f"the model process's answer could not be read ({e!r}; killed)")

    def _fail(self, failure: str) -> None:
        """The process cannot serve any more: ``failure`` (the first one stays) for this
        and every later call, and for every call waiting."""
        self._failure = self._failure or failure
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.done():
                waiting.set_exception(ModelProcessError(self._failure))

    def _kill(self) -> None:
        """SIGKILL the child (a stopped one too): its socket then closes."""
        if self._child is not None and self._child.pid is not None:
            try:
                os.kill(self._child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
