"""Re-rank requests: a caller's candidates ordered by the model and the re-rank stage.

    request  (rank-requests, key = user_id):  {"request_id", "user_id", "candidates": [...],
                                               "k"?, "context"?: {"history"?: [...]}}
    response (rank-responses, key = request_id): {"request_id", "user_id", "items":
              [{"item_id", "score", "source"?}], "filtered": [{"item_id", "reason"}],
              "model_version"}  or  {"request_id", "error": {"code", "detail"}}

Keyed by user_id, a request lands on the partition of that user's state, so the worker
reads the user's history from ``user_to_history``; ``context.history`` is used when the
worker holds no state for the user (or the request was keyed otherwise). Every request
gets exactly one response (at-least-once: a crash may repeat one); malformed ones get an
error response, never silence. Scoring runs in the model process, like the lists.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import faust

from rtrank.streams import safe_json
from rtrank.streams.records import compact_json
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection, parse_identifier, parse_json_object
from rtrank.streams.worker.agents import Serving
from rtrank.streams.worker.state import UserState

log = logging.getLogger(__name__)

MAX_CANDIDATES = 1_000  # one request scores its candidates in one go: bound the work


@dataclass(frozen=True)
class RankRequest:
    request_id: str
    user_id: str
    candidates: list[str]
    k: int | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> list[str]:
        h = self.context.get("history")
        return [str(i) for i in h] if isinstance(h, list) else []


def parse_rank_request(value: bytes | None, limits: Limits) -> RankRequest | Rejection:
    """Validate one raw request; ids may be strings or integers, like events'."""
    obj = parse_json_object(value, limits)
    if isinstance(obj, Rejection):
        return obj
    ids = {}
    for name in ("request_id", "user_id"):
        if obj.get(name) is None:
            return Rejection("missing_field", f"missing field {name!r}")
        checked = parse_identifier(name, obj[name], limits, allow_int=True)
        if isinstance(checked, Rejection):
            return checked
        ids[name] = checked
    candidates = obj.get("candidates")
    if not isinstance(candidates, list):
        return Rejection("wrong_type", "candidates must be a list of item ids")
    if len(candidates) > MAX_CANDIDATES:
        return Rejection("too_many_candidates", f"{len(candidates)} > {MAX_CANDIDATES}")
    items = []
    for c in candidates:
        checked = parse_identifier("candidate", c, limits, allow_int=True)
        if isinstance(checked, Rejection):
            return checked
        items.append(checked)
    k = obj.get("k")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        return Rejection("wrong_type", "k must be a positive integer")
    context = obj.get("context") or {}
    if not isinstance(context, dict):
        return Rejection("wrong_type", "context must be an object")
    return RankRequest(ids["request_id"], ids["user_id"], items, k, context)


def request_id_of(value: bytes | None, key: bytes | None) -> str | None:
    """Best effort, for error responses: the request's id when it is a valid id, else the
    record key when it is no longer than an id may be, else None."""
    try:
        obj = safe_json.loads(value or b"")
    except safe_json.JsonError:
        obj = None  # not JSON we accept: fall back to the key
    if isinstance(obj, dict):
        rid = parse_identifier("request_id", obj.get("request_id"), Limits(), allow_int=True)
        if not isinstance(rid, Rejection):
            return rid
    if key and len(key) <= Limits().max_id_bytes:
        return key.decode("utf-8", "replace")
    return None


def error_response(request_id: str | None, rejection: Rejection) -> bytes:
    return compact_json(
        {"request_id": request_id, "error": {"code": rejection.code, "detail": rejection.detail}}
    )


def register_rank_requests(
    app: faust.App,
    settings: Settings,
    topic: faust.TopicT,
    serving: Serving,
    user_to_history: faust.Table,
) -> None:
    """Attach the ``rank`` agent: one response per request on ``rank_responses_topic``."""
    limits = Limits.from_settings(settings)

    @app.agent(topic, name="rank")
    async def rank(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            parsed = parse_rank_request(message.value, limits)
            if isinstance(parsed, Rejection):
                rid = request_id_of(message.value, message.key)
                await app.producer.send(
                    settings.rank_responses_topic,
                    rid.encode() if rid else None,
                    error_response(rid, parsed),
                    None,
                    None,
                    None,
                )
                continue
            state = user_to_history.get(parsed.user_id)
            history = UserState.from_json(state).history if state else parsed.history
            while serving.report is None:
                await asyncio.sleep(0.1)  # the model is still loading
            version, ranked, filtered = await serving.rank(history, parsed.candidates)
            if parsed.k is not None:
                ranked = ranked[: parsed.k]
            body = {
                "request_id": parsed.request_id,
                "user_id": parsed.user_id,
                "items": [r.to_json() for r in ranked],
                "filtered": filtered,
                "model_version": version,
            }
            await app.producer.send(
                settings.rank_responses_topic,
                parsed.request_id.encode(),
                compact_json(body),
                None,
                None,
                None,
            )
