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
  itself, so snapshots never cross the process boundary), all in
  `rtrank.streams.scorer.served_model`, which only the child imports: the worker's own
  process never loads torch (docs/capacity.md). The catalogue lives in the
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
one length-prefixed pickle (`frame`) of a call's name (`served_model.CALLS`) and its
arguments, each answer one of ``(True, result)`` or ``(False, exception)``, in the calls'
order. No thread of the worker takes part: a `concurrent.futures.ProcessPoolExecutor` moved
each call through a manager and a feeder thread, whose turns at the GIL held the event loop
up and cost it about 0.5 ms a call (docs/decisions.md, "The model process's socket").
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from rtrank.streams.records import Event
from rtrank.streams.scorer.model_wire import (
    ScoreRequest,
    pack_events,
    pack_requests,
    unpack_lists,
)
from rtrank.streams.scorer.rerank import RankedItem
from rtrank.streams.settings import Settings

log = logging.getLogger(__name__)

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


def frame(message: Any) -> bytes:
    """``message`` as it crosses the socket: its pickle's length, then the pickle."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


def _child(sock: socket.socket, log_level: str) -> None:
    """The model process's entry point. The served side (torch, faiss, the model, the
    update feed) is imported here, in the child: the worker's own process never loads it."""
    from rtrank.streams.scorer.served_model import serve

    serve(sock, log_level)


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
            target=_child, args=(theirs, self.settings.log_level), name="rtrank-model", daemon=True
        )
        self._child.start()
        theirs.close()
        reader, self._writer = await asyncio.open_connection(sock=self._socket)
        self._answers = asyncio.ensure_future(self._read_answers(reader))
        caught_up, report = await self._call("load", self.settings, bound=self.start_timeout_s)
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
            "score", pack_requests(requests), pack_events(fresh), changes
        )
        return versions, unpack_lists(lists), report

    async def rank(
        self, history: list[str], candidates: list[str], changes: dict[str, Any]
    ) -> tuple[int, list[RankedItem], list[dict], ModelReport]:
        """A caller's candidates ordered for ``history``, and those filtered out."""
        return await self._call("rank", history, candidates, changes)

    async def apply_updates(self, changes: dict[str, Any]) -> ModelReport:
        return await self._call("apply_updates", changes)

    async def forget_partitions(self, partitions: set[int]) -> int:
        """Drop what the process keeps for the users of ``partitions`` (their encode cache
        entries), once every call made before this one has run: a batch in flight cannot
        put them back. Returns how many users were dropped."""
        return await self._call("forget_partitions", partitions)

    async def forget_users(self, users: list[str]) -> int:
        """Drop what the process keeps for ``users``, who were forgotten (their encode
        cache entries), once every call made before this one has run. Returns how many of
        them it held."""
        return await self._call("forget_users", users)

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

    async def _call(self, fn: str, *args: Any, bound: float | None = None) -> Any:
        """The child's call named ``fn`` (`rtrank.streams.scorer.served_model.CALLS`) on
        ``args``, raising `ModelProcessError` when the child dies or does not answer within
        ``bound`` (``model_call_timeout_s`` by default)."""
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
