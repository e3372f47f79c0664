"""The rtrank Faust app: one per worker process, built by `build_app` from one ``Settings``.
It runs as the stream processor, with its web port serving /health and /metrics:

    rtrank worker -l info
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiohttp.web import Response

from rtrank.streams.kafka_security import faust_credentials
from rtrank.streams.settings import Settings
from rtrank.streams.shutdown import StopDeadline
from rtrank.streams.worker.agents import register_agents
from rtrank.streams.worker.faust_patches import PatchedApp, fetch_wait_ms, producer_buffer_max
from rtrank.streams.worker.group_metrics import register_group_metrics
from rtrank.streams.worker.local_state import mark_running, mark_stopped
from rtrank.streams.worker.metrics import Metrics
from rtrank.streams.worker.rerank_wiring import register_catalogue, register_rerank_views
from rtrank.streams.worker.topics_and_tables import declare_tables, declare_topics, ensure_topics

log = logging.getLogger(__name__)


class RtrankApp(PatchedApp):
    """The Faust app plus the settings it was built from.

    Its behaviour of its own: on a worker's first start, every rtrank topic is created with
    the configured partition counts before any agent reads or writes, and the local tables
    of a worker that did not stop cleanly are discarded (`rtrank.streams.worker.local_state`);
    a worker told to stop ends within ``shutdown_timeout_s``, with exit 1 if its stop did
    not finish by then (`rtrank.streams.shutdown`).
    What it changes in Faust (inline delivery, the fetch wait, the producer buffer's bound,
    no ``Monitor``) is `rtrank.streams.worker.faust_patches.PatchedApp`'s.
    """

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            settings.app_id,
            broker=settings.broker,
            broker_credentials=faust_credentials(settings),
            store=settings.store,
            datadir=str(settings.data_dir),
            web_port=settings.web_port,
            web_bind=settings.web_bind,
            **forwarded_to(settings.web_bind),
            topic_partitions=settings.partitions,
            topic_replication_factor=settings.replication_factor,
            table_standby_replicas=settings.standby_replicas,
            broker_session_timeout=settings.session_timeout_s,
            broker_commit_interval=settings.commit_interval_s,
            producer_linger=settings.producer_linger_ms / 1000,
            autodiscover=False,
            stream_buffer_maxsize=settings.stream_buffer_max,
            broker_max_poll_records=settings.consumer_max_poll_records,
            producer_buffer_max_messages=producer_buffer_max(settings.batch_max_events),
            fetch_wait_ms=settings.consumer_fetch_wait_ms,
            gapless_topics=frozenset({settings.events_topic}),
        )
        self.settings = settings

    async def on_first_start(self) -> None:
        await super().on_first_start()
        if self.settings.store.startswith("rocksdb:"):
            mark_running(Path(self.conf.appdir), Path(self.conf.tabledir))
        if not self.settings.broker.startswith("memory://"):
            counts = await asyncio.to_thread(ensure_topics, self.settings)
            log.info("topics ready: %s", counts)

    async def on_stop(self) -> None:
        """The first step of a stop (mode stops the app before the worker's other
        services): from here the process has ``shutdown_timeout_s`` to end
        (`rtrank.streams.shutdown`)."""
        StopDeadline(
            self.settings.shutdown_timeout_s,
            "the worker",
            "its local tables are recovered from their changelogs at the next start",
        ).start()
        await super().on_stop()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        if self.settings.store.startswith("rocksdb:"):
            mark_stopped(Path(self.conf.appdir))


def forwarded_to(web_bind: str) -> dict[str, str]:
    """Faust's ``web_host`` for a worker listening on ``web_bind``: the address other workers
    forward ``/recommendations`` requests to (the app's canonical URL). A worker bound to
    one address is reached there; one bound to every interface keeps Faust's default, the
    host name."""
    if web_bind in ("0.0.0.0", "::", ""):
        return {}
    return {"web_host": f"[{web_bind}]" if ":" in web_bind else web_bind}


def build_app(settings: Settings) -> RtrankApp:
    """The only app: topics, tables, agents and web pages, in that order."""
    app = RtrankApp(settings)
    topics = declare_topics(app, settings)
    tables = declare_tables(app, settings)
    metrics = Metrics()
    register_group_metrics(app, settings, metrics)
    register_catalogue(app, settings, topics, tables, metrics)
    serving = register_agents(
        app, settings, topics, tables.user_to_history, metrics, items=tables.items
    )
    register_rerank_views(app, settings, topics, serving, tables.user_to_history)

    @app.page("/health")
    async def health(web, request):  # noqa: ANN001 - Faust view signature
        """200 once the worker can answer: the model is loaded and its first partition
        assignment is recovered (before that, events would only queue up). Later
        rebalances show in ``rebalancing`` but keep the status: the worker is alive.
        503 with the reason once the model process cannot answer (dead, or hung: a call
        outstanding past ``model_call_timeout_s``); the worker is then stopping."""
        problem = serving.model.problem if serving.model is not None else None
        if problem is not None:
            return web.json({"status": "failing", "reason": problem}, status=503)
        ready = serving.report is not None and app.tables.recovery.completed.is_set()
        body = {"status": "ok" if ready else "starting", "rebalancing": app.rebalancing}
        if ready:
            body["model_version"] = serving.report.version
            body["device"] = serving.report.device
            body["consumer_fetch_wait_ms"] = fetch_wait_ms(app.consumer)
            body["events_partitions"] = sorted(
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == settings.events_topic
            )
        return web.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus(web, request):  # noqa: ANN001 - Faust view signature
        return Response(body=metrics.exposition(), content_type="text/plain", charset="utf-8")

    return app
