"""Re-ranking on the Faust app: the catalogue, re-rank requests and the list lookup page.

Registered from `rtrank.streams.worker.app.build_app`:

    register_catalogue(app, settings, topics, tables, metrics)   # items -> item_to_info
    serving = register_agents(..., items=tables.items)            # lists are re-ranked
    register_rerank_views(app, settings, topics, serving, tables.user_to_history)

- ``catalogue`` agent: each record of the compacted ``items`` topic is validated
  (`rtrank.streams.catalogue.parse_item`); malformed ones go to ``items.dlq`` with their original
  bytes and ``rtrank-reason`` / ``rtrank-source`` headers, good ones are written to the
  ``item_to_info`` GlobalTable (`rtrank.streams.worker.topics_and_tables.declare_tables`),
  tombstones delete. The next batch sees the change: the table's dict is a
  `rtrank.streams.catalogue.ChangedItems`, whose changes go to the model process with its
  next call.
- ``rank`` agent: `rtrank.streams.worker.rank_requests`.
- ``GET /recommendations/{user_id}``: the user's latest list (``UserState.last_list``),
  404 when none (a forgotten user has none); Faust's table routing forwards the request to
  the worker that owns the user's partition. With a bearer token configured, a request
  without it gets 401 (`rtrank.streams.worker.web_auth`).
"""

from __future__ import annotations

import logging

import faust

from rtrank.streams.catalogue import parse_item
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection
from rtrank.streams.worker.agents import FaustSink, Serving
from rtrank.streams.worker.dead_letters import dead_letter
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.rank_requests import register_rank_requests
from rtrank.streams.worker.state import UserState
from rtrank.streams.worker.topics_and_tables import Tables, Topics
from rtrank.streams.worker.web_auth import bearer_token, challenge

log = logging.getLogger(__name__)


def register_catalogue(
    app: faust.App, settings: Settings, topics: Topics, tables: Tables, metrics: Metrics
) -> None:
    """The ``catalogue`` agent: ``items`` records into the ``item_to_info`` table."""
    limits = Limits.from_settings(settings)  # created_at ahead of the clock: dead-lettered
    item_to_info = tables.item_to_info
    sink = FaustSink(app)

    @app.agent(topics.items, name="catalogue")
    async def catalogue_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            if message.value is None:  # tombstone: the item left the catalogue
                if message.key is not None:
                    item_to_info.pop(message.key.decode("utf-8", "replace"), None)
                continue
            parsed = parse_item(message.key, message.value, limits)
            if isinstance(parsed, Rejection):
                await dead_letter(sink, settings.items_dlq_topic, message, parsed, metrics, "item_")
                continue
            item_to_info[parsed.item_id] = parsed.to_json()


def register_rerank_views(
    app: faust.App,
    settings: Settings,
    topics: Topics,
    serving: Serving,
    user_to_history: faust.Table,
) -> None:
    """The ``rank`` agent and ``GET /recommendations/{user_id}``."""
    register_rank_requests(app, settings, topics.rank_requests, serving, user_to_history)

    token = bearer_token(settings)

    @app.page("/recommendations/{user_id}")
    async def latest_list(web, request, user_id: str):  # noqa: ANN001, ANN202 - Faust view
        """The token is checked here, before routing: a refusal keeps its
        ``WWW-Authenticate`` header (Faust's forwarding copies status and body only), and
        the request forwarded to the owner carries the caller's ``Authorization``."""
        refused = challenge(request.headers, token)
        if refused is not None:
            return web.json(
                {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": refused}
            )
        return await owners_list(web, request, user_id=user_id)

    @app.table_route(table=user_to_history, match_info="user_id")
    async def owners_list(web, request, user_id: str):  # noqa: ANN001, ANN202 - Faust view
        raw = user_to_history.get(user_id)
        state = UserState.from_json(raw) if raw else None
        if state is None or not state.last_list:
            return web.json({"user_id": user_id, "error": "no list yet"}, status=404)
        return web.json(
            {
                "user_id": user_id,
                "items": [{"item_id": i} for i in state.last_list],
                "model_version": state.last_list_version,
            }
        )
