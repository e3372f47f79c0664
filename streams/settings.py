"""Runtime settings: one frozen object, read once from ``RTRANK_*`` environment variables.

Every field below is set by the environment variable ``RTRANK_<FIELD>`` (upper case), e.g.
``RTRANK_BROKER=kafka://kafka:9092`` or ``RTRANK_BATCH_MAX_EVENTS=512``. The object is built
in ``main()`` and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    broker: str = "kafka://localhost:9092"  # Faust URL; kafka-python uses the host:port part
    app_id: str = "rtrank"  # consumer group and prefix of changelog topics
    store: str = "rocksdb://"  # table store; memory:// only for unit tests
    data_dir: Path = Path("rtrank-data")  # RocksDB tables live under here
    web_port: int = 6066  # health + metrics HTTP port of the worker
    log_level: str = "info"

    events_topic: str = "events"
    recommendations_topic: str = "recommendations"
    dlq_topic: str = "events.dlq"
    training_topic: str = "training-examples"
    model_updates_topic: str = "model-updates"  # one partition: versions must stay in order
    partitions: int = 8  # events, recommendations and the user table share this count
    standby_replicas: int = 1  # warm table copies on other workers (needs 2+ workers)
    session_timeout_s: float = 30.0  # a worker silent this long loses its partitions
    producer_linger_ms: float = 25.0  # fewer, larger produce requests (README: measured)
    consumer_max_poll_records: int = 10_000  # records per consumer poll
    stream_buffer_max: int = 32_768  # events buffered per stream before fetching pauses
    consumer_fetch_wait_ms: int = 100  # longest a fetch waits at the broker (Faust: 1500)

    top_k: int = 10  # K items per recommendation list
    history_len: int = 50  # items kept per user and fed to the model
    seen_len: int = 500  # items remembered per user for the seen-item filter
    allow_repeats: bool = False  # True lets already-seen items be recommended again
    batch_max_events: int = 4096  # N (only a backlog fills it): a batch closes at N events ...
    batch_max_ms: float = 20.0  # ... or T ms after its first event was read, whichever first
    batch_catch_up_ms: float = 500.0  # a batch waits up to this for events waiting unread

    device: str = "auto"  # auto = CUDA when present, else CPU
    torch_threads: int = 1  # CPU threads for inference; 1 leaves a core to the event loop
    score_max_users: int = 256  # users per model call: bounds the (users x catalogue) scores
    score_shortlist: str = (
        "auto"  # on/off/auto: top-k via a bf16 pass, then exact (auto: bf16 native)
    )
    checkpoint: str = ""  # model to serve; empty = randomly initialised, grows with the stream
    seed: int = 0  # for the randomly initialised model

    update_max_bytes: int = 900_000  # per update message: under the broker's 1 MiB default
    snapshot_every: int = 20  # versions per full snapshot: a late worker replays < this many deltas
    update_catch_up_s: float = 60.0  # a starting worker waits this long to read the updates
    trainer_lr: float = 5e-3  # online Adam rate of item rows, at full surprise (rtrank.model.online)
    trainer_surprise_floor: float = 0.05  # least share of trainer_lr a step takes
    trainer_dense_lr: float = 0.0  # online Adam rate of the transformer; 0: not trained online
    trainer_batch_size: int = 256  # fresh examples per step; more arrive -> more steps
    trainer_replay_ratio: float = 0.25  # replayed examples per fresh one: guards against forgetting
    trainer_recent_size: int = 5_000  # newest examples kept for replay
    trainer_reservoir_size: int = 20_000  # uniform sample of all older examples kept for replay
    trainer_rows_per_step: int = 0  # rows a step updates besides its targets (largest gradients)
    trainer_negatives: int = 256  # sampled-softmax negatives per online step (pretraining: 4096)
    trainer_publish_s: float = 1.0  # at most one version per this long: freshness vs volume
    trainer_examples_from: str = "earliest"  # where a trainer with no published version starts
    trainer_threads: int = 1  # torch CPU threads of the trainer; leave cores to worker and broker
    trainer_nice: int = 10  # added to the trainer's OS niceness: on a shared machine, serving first
    eval_window: int = 1000  # events in the rolling online Hit@10 / NDCG@10

    # re-ranking, cold start, re-rank requests (rtrank.streams.scorer.rerank, rtrank.streams.scorer.ranker)
    items_topic: str = "items"  # item catalogue, compacted, keyed by item_id
    items_dlq_topic: str = "items.dlq"  # malformed catalogue records
    rank_requests_topic: str = "rank-requests"  # callers' candidates to order (key user_id)
    rank_responses_topic: str = "rank-responses"  # answers, keyed by request_id
    rerank_candidates: int = 50  # N >= K model candidates: room for filters and diversity
    mmr_lambda: float = 1.0  # 1 = plain model order; lower trades relevance for diversity
    max_per_category: int = 0  # at most this many items of one category per list; 0 = no cap
    category_boosts: str = ""  # "cat:0.2,cat2:-0.5": added to normalised relevance
    blocked_items: str = ""  # "id1,id2": never shown (legal, stock, policy)
    pinned_items: str = ""  # "id@0,id2@3": shown at that 0-based position when allowed
    repeat_event_types: str = ""  # seen only via these types ("view"): may be shown again
    fresh_age_s: float = 7 * 24 * 3600.0  # items created since are fresh (boost, exploration)
    fresh_boost: float = 0.0  # relevance added to fresh items
    explore_slots: int = 1  # last positions of a list kept for fresh items (new ones learn)
    trending_half_life_s: float = 3600.0  # popularity halves in this time without events
    cold_start_max_history: int = 1  # users with at most this many known items get trending
    event_weights: str = "view:1,click:2,add_to_cart:4,purchase:8"  # training-example weight
    sequence_event_types: str = ""  # event types that enter the history; empty = all
    explain: bool = False  # name the 1-3 history items behind each recommended item

    max_id_bytes: int = 256  # user_id / item_id / event_type longer than this go to the DLQ
    max_event_bytes: int = 64 * 1024  # whole raw events longer than this go to the DLQ

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``RTRANK_*`` variables; unknown values raise ValueError."""
        env = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = env.get(f"RTRANK_{field.name.upper()}")
            if raw is not None:
                values[field.name] = _parse(field.name, field.type, raw)
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)

    def isolated(self, run: str, **changes: object) -> Settings:
        """A copy whose app id and every topic name carry ``run`` (e.g. ``demo-20261123``),
        so a demo, benchmark or test run shares no topic or consumer group with another run
        on the same broker."""
        topics = {
            f.name: f"{run}.{getattr(self, f.name)}"
            for f in fields(self)
            if f.name.endswith("_topic")
        }
        return self.replace(app_id=f"{self.app_id}-{run}", **topics, **changes)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for kafka-python, from the Faust URL."""
        return ",".join(part.split("://")[-1] for part in self.broker.split(";"))


def _parse(name: str, type_name: object, raw: str) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(raw)
        if kind == "Path":
            return Path(raw)
    except ValueError:
        raise ValueError(f"RTRANK_{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw


def documented_settings() -> list[tuple[str, str]]:
    """(environment variable, default) pairs, for the README and ``--help``."""
    return [(f"RTRANK_{f.name.upper()}", str(f.default)) for f in fields(Settings)]
