"""Re-ranking on the Faust app: the catalogue, re-rank requests and the list lookup page.

Registered from `rtrank.streams.worker.app.build_app`:

    items = register_catalogue(app, settings, metrics)           # items -> item_to_info
    serving = register_agents(..., items=items)                   # lists are re-ranked
    register_rerank_views(app, settings, serving, user_to_history)

- ``catalogue`` agent: each record of the compacted ``items`` topic is validated
  (`rtrank.streams.catalogue.parse_item`); malformed ones go to ``items.dlq`` with their original
  bytes and ``rtrank-reason`` / ``rtrank-source`` headers, good ones are written to the
  ``item_to_info`` GlobalTable (every worker holds the whole catalogue, kept in memory and
  recovered from its changelog), tombstones delete. The next batch sees the change: the
  table's dict is a `rtrank.streams.catalogue.ChangedItems`, whose changes go to the model process
  with its next call.
- ``rank`` agent: `rtrank.streams.worker.rank_requests`.
- ``GET /recommendations/{user_id}``: the user's latest list (``UserState.last_list``),
  404 when none; Faust's table routing forwards the request to the worker that owns the
  user's partition.
"""

from __future__ import annotations

import logging

import faust

from rtrank.streams.catalogue import ChangedItems, parse_item
from rtrank.streams.settings import Settings
from rtrank.streams.validation import Limits, Rejection
from rtrank.streams.worker.agents import Serving
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.rank_requests import register_rank_requests
from rtrank.streams.worker.state import UserState
from rtrank.streams.worker.topics_and_tables import RAW, json_table_schema

log = logging.getLogger(__name__)


def register_catalogue(app: faust.App, settings: Settings, metrics: Metrics) -> ChangedItems:
    """The ``item_to_info`` GlobalTable and the ``catalogue`` agent; returns the table's dict."""
    limits = Limits(settings.max_id_bytes, settings.max_event_bytes)
    records = app.topic(settings.items_topic, partitions=settings.partitions, **RAW)
    item_to_info = app.GlobalTable(
        "item_to_info",
        default=None,
        partitions=settings.partitions,
        schema=json_table_schema(),
        help="item_id -> ItemInfo (availability, category, tags, boost, created_at)",
    )
    # In memory (recovered from the changelog at start): small, and copied to the model
    # process. Set directly: Faust drops store="memory://" (a URL that is falsy).
    item_to_info._data = item_to_info._new_store_by_url("memory://")
    items = ChangedItems()
    item_to_info.data.data = items

    @app.agent(records, name="catalogue")
    async def catalogue_agent(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            if message.value is None:  # tombstone: the item left the catalogue
                if message.key is not None:
                    item_to_info.pop(message.key.decode("utf-8", "replace"), None)
                continue
            parsed = parse_item(message.key, message.value, limits)
            if isinstance(parsed, Rejection):
                metrics.dead_letters.labels(f"item_{parsed.code}").inc()
                await app.producer.send(
                    settings.items_dlq_topic,
                    message.key,
                    message.value,
                    None,
                    None,
                    parsed.dead_letter_headers(message),
                )
                continue
            item_to_info[parsed.item_id] = parsed.to_json()

    return items


def register_rerank_views(
    app: faust.App,
    settings: Settings,
    serving: Serving,
    user_to_history: faust.Table,
) -> None:
    """The ``rank`` agent and ``GET /recommendations/{user_id}``."""
    requests = app.topic(settings.rank_requests_topic, partitions=settings.partitions, **RAW)
    register_rank_requests(app, settings, requests, serving, user_to_history)

    @app.page("/recommendations/{user_id}")
    @app.table_route(table=user_to_history, match_info="user_id")
    async def latest_list(web, request, user_id: str):  # noqa: ANN001, ANN202 - Faust view
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
