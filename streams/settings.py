"""Runtime settings: one frozen, typed object, validated once when a command starts.

Every field is set by the environment variable ``RTRANK_<FIELD>`` (upper case), e.g.
``RTRANK_BROKER=kafka://kafka:9092`` or ``RTRANK_BATCH_MAX_EVENTS=512``. `Settings.from_env`
is the one place that reads the environment: the ``rtrank`` command calls it once and passes
the object down, and a malformed value stops it there with one line naming the variable
(`SettingsError`), not later inside the process that would have used it.

Structured values keep the syntax of their variables and are parsed at load into typed values
(`rtrank.streams.setting_types`): ``RTRANK_EVENT_WEIGHTS=view:1,click:2`` into
``dict[str, float]``, ``RTRANK_BLOCKED_ITEMS=id1,id2`` into ``frozenset[str]``,
``RTRANK_PINNED_ITEMS=id@0,id2@3`` into ``dict[str, int]``. `to_env` writes every value back in
its variable's syntax, so a child process started with it reads the same settings.

Keyword construction (``Settings(top_k=5)``, as tests and benchmarks do) sees only its
arguments and the defaults, never the environment, and accepts either form of a structured
value. The reference in docs/configuration.md is generated from the descriptions below
(``rtrank config --markdown``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from rtrank.streams.experiments.definition import load_experiment
from rtrank.streams.setting_types import (
    Device,
    Flag,
    LogLevel,
    Names,
    Pinned,
    Port,
    Weights,
    env_text,
)


class SettingsError(ValueError):
    """A malformed setting; the message is one line naming its variable and what is wrong."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RTRANK_", frozen=True, extra="forbid")

    broker: str = Field(
        "kafka://localhost:9092",
        description="Kafka bootstrap servers as a Faust URL (`kafka://host:port`, several "
        "joined by `;`); the Kafka clients use the host:port parts.",
    )
    app_id: str = Field("rtrank", description="Consumer group and prefix of changelog topics.")
    store: str = Field("rocksdb://", description="Table store; `memory://` only for unit tests.")
    data_dir: Path = Field(Path("rtrank-data"), description="RocksDB tables live under here.")
    web_port: Port = Field(6066, description="HTTP port of the worker's /health and /metrics.")
    web_bind: str = Field(
        "127.0.0.1",
        description="Address the worker's web server and the trainer's /metrics listen on: "
        "127.0.0.1 = this machine only; `0.0.0.0` = every interface (the container images "
        "set it). Workers forward `/recommendations` to each other at this address unless "
        "it is a wildcard (then at the host name).",
    )
    web_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token that `GET /recommendations/{user_id}` requires "
        "(`Authorization: Bearer <token>`); empty = no token. /health and /metrics stay "
        "open. Never shown.",
    )
    web_token_file: str = Field(
        "",
        description="File holding the bearer token (a mounted secret; surrounding "
        "whitespace ignored), read when the app is built; set this or RTRANK_WEB_TOKEN, "
        "not both.",
    )
    log_level: LogLevel = Field(
        "info", description="Log level of the worker, the trainer and the model process."
    )

    events_topic: str = Field("events", description="Input topic of user events.")
    recommendations_topic: str = Field(
        "recommendations", description="Output topic of recommendation lists (key user_id)."
    )
    dlq_topic: str = Field(
        "events.dlq", description="Dead letters: events that failed validation, with a reason."
    )
    training_topic: str = Field(
        "training-examples", description="(prefix, next item) examples for the trainer."
    )
    model_updates_topic: str = Field(
        "model-updates",
        description="Versioned model updates from the trainer; one partition, so versions "
        "stay in order.",
    )
    partitions: int = Field(
        8, gt=0, description="Partitions of events, recommendations and the user table."
    )
    replication_factor: int = Field(
        1,
        gt=0,
        description="Replicas of every topic rtrank creates, Faust's own included: 1 on one "
        "broker, 3 on a cluster. Set, not discovered from the brokers: a worker starting "
        "while a broker is down must still create the topics every other worker does.",
    )
    min_insync_replicas: int = Field(
        1,
        gt=0,
        description="`min.insync.replicas` of every topic rtrank creates: an acknowledged "
        "write is on this many replicas. 2 with replication 3 keeps serving, losing nothing, "
        "through one dead broker. At most RTRANK_REPLICATION_FACTOR.",
    )
    standby_replicas: int = Field(
        1, ge=0, description="Warm table copies on other workers (needs 2+ workers)."
    )
    session_timeout_s: float = Field(
        30.0, gt=0, description="A worker silent this long loses its partitions."
    )
    commit_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often the worker commits the offsets of the events it answered: "
        "after a crash, the events answered since the last commit are answered again.",
    )
    producer_linger_ms: float = Field(
        25.0,
        ge=0,
        description="How long the producer waits to fill a request: fewer, larger "
        "produce requests (`rtrank bench pipeline`).",
    )
    producer_delivery_timeout_s: float = Field(
        120.0,
        gt=0,
        description="How long the worker's producer retries a record (a list, a training "
        "example, a changelog write) through broker failures. One still undelivered then "
        "stops the worker (exit 1) before its event's offset is committed, so another "
        "worker answers that event again.",
    )
    consumer_max_poll_records: int = Field(10_000, gt=0, description="Records per consumer poll.")
    stream_buffer_max: int = Field(
        32_768, gt=0, description="Events buffered per stream before fetching pauses."
    )
    consumer_fetch_wait_ms: int = Field(
        100, ge=0, description="Longest a fetch waits at the broker for new events (Faust: 1500)."
    )

    top_k: int = Field(10, gt=0, description="K items per recommendation list.")
    history_len: int = Field(50, gt=0, description="Items kept per user and fed to the model.")
    seen_len: int = Field(
        500, gt=0, description="Items remembered per user for the seen-item filter."
    )
    allow_repeats: Flag = Field(False, description="Let already-seen items be recommended again.")
    batch_max_events: int = Field(
        4096,
        gt=0,
        description="A micro-batch closes at this many events (only a backlog fills it) ...",
    )
    batch_max_ms: float = Field(
        0.0,
        ge=0,
        description="... or this many ms after its first event was read, whichever comes first "
        "(0: what is queued when it begins; what comes while it is scored makes the next).",
    )
    batch_catch_up_ms: float = Field(
        500.0,
        ge=0,
        description="Behind a backlog, a batch waits up to this long for the "
        "events already waiting unread when it began.",
    )
    batch_keep_up_events: int = Field(
        64,
        gt=0,
        description="While fewer than RTRANK_BATCH_BEHIND_EVENTS events wait when a batch "
        "begins (queued, and unread), it closes at this many: every event of a batch waits "
        "for the whole batch's model call, so smaller batches answer sooner.",
    )
    batch_behind_events: int = Field(
        1024,
        gt=0,
        description="With this many events waiting or more when a batch begins, the worker "
        "is behind: the batch takes up to RTRANK_BATCH_MAX_EVENTS, which gives a user's "
        "several events one list and one state write, and catches up in fewer calls.",
    )

    device: Device = Field(
        "auto", description="`auto` (CUDA when present, else CPU), `cpu`, `cuda` or `cuda:N`."
    )
    torch_threads: int = Field(
        1, gt=0, description="CPU threads for inference; 1 leaves a core to the event loop."
    )
    score_max_users: int = Field(
        256, gt=0, description="Users per model call: bounds the (users x catalogue) scores."
    )
    score_shortlist: Literal["auto", "on", "off"] = Field(
        "auto",
        description="`on`: top-K via a bfloat16 pass over the catalogue, rescored "
        "exactly; `off`: float32 only; `auto`: on where bfloat16 runs natively.",
    )
    item_index: Literal["exact", "ivf"] = Field(
        "exact",
        description="How a list's items are found: `exact` scans the whole catalogue; "
        "`ivf` searches an approximate faiss IVF index (for catalogues of millions), its "
        "candidates scored exactly; kept current with model updates.",
    )
    item_index_lists: int = Field(
        0, ge=0, description="IVF cells (`item_index=ivf`); 0 = about 2 x sqrt(items)."
    )
    item_index_probe: int = Field(
        32, gt=0, description="IVF cells searched per list: higher = better recall, slower."
    )
    encode_cache_mb: float = Field(
        256.0,
        ge=0,
        description="MB of per-user keys and values the model process keeps so that an "
        "active user's next event encodes one position, not the whole window (least "
        "recently used dropped first; 0 = off; a model counting positions from the end "
        "never uses it). Per served model: each frozen experiment variant keeps one of "
        "its own.",
    )
    checkpoint: str = Field(
        "", description="Model to serve; empty = randomly initialised, grows with the stream."
    )
    seed: int = Field(0, description="Seed of the randomly initialised model.")

    update_max_bytes: int = Field(
        900_000,
        gt=0,
        description="Largest model-update message (updates are chunked under "
        "it): under the broker's 1 MiB default.",
    )
    snapshot_every: int = Field(
        20, gt=0, description="Versions per full snapshot: a late worker replays fewer deltas."
    )
    model_call_timeout_s: float = Field(
        15.0,
        gt=0,
        description="Longest a call to the model process (a batch, a rank request, updates) "
        "may take. A model process that has not answered by then is taken for hung: "
        "/health fails and the worker stops (exit 1), so its partitions move to another.",
    )
    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A worker or trainer told to stop (SIGTERM) that has not stopped within "
        "this long (its broker unreachable, say) exits anyway with exit 1; a worker then "
        "restarts from its changelogs, as after a crash, a trainer from its last version.",
    )
    update_catch_up_s: float = Field(
        60.0,
        ge=0,
        description="A starting worker reads the published updates for at most "
        "this long before serving.",
    )
    update_signing_key_file: str = Field(
        "",
        description="Trainer and `rtrank rollback`: Ed25519 private key (PEM) that signs "
        "model updates (`rtrank keys new`); the trainer also checks what it reads with its "
        "public half. Empty: updates are not signed.",
    )
    update_verify_key_file: str = Field(
        "",
        description="Workers: Ed25519 public key (PEM); an update that is unsigned or not "
        "signed by its private key for this model-updates topic is rejected. Empty: "
        "updates are not checked (anyone who can write the topic can install a model).",
    )
    update_assembly_max_bytes: int = Field(
        512 * 1024 * 1024,
        gt=0,
        description="Most bytes of model-update chunks a reader holds while assembling; an "
        "update larger than this is rejected (`too_large`) and its chunks freed. Above the "
        "largest snapshot: items x dim x 4 bytes, plus the transformer.",
    )
    trainer_clip_grad_norm: float = Field(
        5.0,
        ge=0,
        description="Longest gradient an online step takes (item rows and transformer "
        "together); 0: not clipped. A step whose loss or gradient is NaN or infinite is "
        "skipped and counted.",
    )
    trainer_archive_dir: str = Field(
        "",
        description="Where the trainer keeps its last snapshots on disk, so that `rtrank "
        "rollback` reaches versions trimmed from model-updates. Empty: rollback reaches the "
        "versions the topic holds.",
    )
    trainer_archive_keep: int = Field(
        10, gt=0, description="Snapshots kept in RTRANK_TRAINER_ARCHIVE_DIR (newest first)."
    )
    trainer_lr: float = Field(
        5e-3,
        ge=0,
        description="Online Adam rate of item rows at full surprise (`rtrank.model.online`).",
    )
    trainer_surprise_floor: float = Field(
        0.05, ge=0, le=1, description="Least share of the trainer's rate a step takes."
    )
    trainer_dense_lr: float = Field(
        0.0, ge=0, description="Online Adam rate of the transformer; 0: not trained online."
    )
    trainer_batch_size: int = Field(
        256, gt=0, description="Fresh examples per step; more arrive -> more steps."
    )
    trainer_replay_ratio: float = Field(
        0.25, ge=0, description="Replayed examples per fresh one: guards against forgetting."
    )
    trainer_recent_size: int = Field(5_000, ge=0, description="Newest examples kept for replay.")
    trainer_reservoir_size: int = Field(
        20_000, ge=0, description="Uniform sample of all older examples kept for replay."
    )
    trainer_rows_per_step: int = Field(
        0, ge=0, description="Item rows a step updates besides its targets (largest gradients)."
    )
    trainer_negatives: int = Field(
        256, gt=0, description="Sampled-softmax negatives per online step (pretraining: 4096)."
    )
    trainer_publish_s: float = Field(
        1.0, ge=0, description="At most one version per this long: freshness against volume."
    )
    trainer_examples_from: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a trainer with no published version starts reading examples."
    )
    trainer_threads: int = Field(
        1, gt=0, description="Torch CPU threads of the trainer; leave cores to worker and broker."
    )
    trainer_nice: int = Field(
        10,
        description="Added to the trainer's OS niceness: on a shared machine, serving "
        "first. 0 leaves it alone.",
    )
    trainer_metrics_port: int = Field(
        6067,
        ge=0,
        le=65535,
        description="HTTP port of the trainer's /metrics (Prometheus); 0 = not served. "
        "A port already taken leaves the trainer running without it (a warning says so).",
    )
    eval_window: int = Field(
        1000, gt=0, description="Events in the worker's rolling online Hit@10 / NDCG@10."
    )

    # re-ranking, cold start, re-rank requests (rtrank.streams.scorer.rerank, .ranker)
    items_topic: str = Field("items", description="Item catalogue, compacted, keyed by item_id.")
    items_dlq_topic: str = Field("items.dlq", description="Malformed catalogue records.")
    rank_requests_topic: str = Field(
        "rank-requests", description="Callers' candidates to order (key user_id)."
    )
    rank_responses_topic: str = Field(
        "rank-responses", description="Answers to rank requests, keyed by request_id."
    )
    rerank_candidates: int = Field(
        50, gt=0, description="N >= K model candidates: room for filters and diversity."
    )
    mmr_lambda: float = Field(
        1.0, ge=0, le=1, description="1 = plain model order; lower trades relevance for diversity."
    )
    max_per_category: int = Field(
        0, ge=0, description="At most this many items of one category per list; 0 = no cap."
    )
    category_boosts: Weights = Field(
        {}, description="`cat:0.2,cat2:-0.5`: added to an item's normalised relevance."
    )
    blocked_items: Names = Field(
        frozenset(), description="`id1,id2`: never shown (legal, stock, policy)."
    )
    pinned_items: Pinned = Field(
        {}, description="`id@0,id2@3`: shown at that 0-based position when allowed."
    )
    repeat_event_types: Names = Field(
        frozenset(),
        description="`view,...`: items seen only through these event types may be shown again.",
    )
    fresh_age_s: float = Field(
        7 * 24 * 3600.0, ge=0, description="Items created since are fresh (boost, exploration)."
    )
    fresh_boost: float = Field(0.0, description="Relevance added to fresh items.")
    explore_slots: int = Field(
        1, ge=0, description="Last positions of a list kept for fresh items (new ones learn)."
    )
    trending_half_life_s: float = Field(
        3600.0, gt=0, description="Popularity halves in this time without events."
    )
    cold_start_max_history: int = Field(
        1, ge=0, description="Users with at most this many known items get the trending list."
    )
    event_weights: Weights = Field(
        {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0},
        description="`type:weight,...`: weight of a training example (and of popularity) "
        "per event type; other types count 1.",
    )
    sequence_event_types: Names = Field(
        frozenset(), description="`type,...`: event types that enter the history; empty = all."
    )
    explain: Flag = Field(
        False, description="Name the 1-3 history items behind each recommended item."
    )
    experiment_file: str = Field(
        "",
        description="A JSON (or `.toml`) file declaring an A/B or interleaving experiment: "
        "variants, their traffic shares and overrides (README, Experiments); empty = none.",
    )

    max_id_bytes: int = Field(
        256, gt=0, description="user_id / item_id / event_type longer than this go to the DLQ."
    )
    max_event_bytes: int = Field(
        64 * 1024, gt=0, description="Raw events longer than this go to the DLQ."
    )
    max_clock_skew_s: float = Field(
        300.0,
        ge=0,
        description="Events whose `ts` is more than this many seconds ahead of the worker's "
        "clock go to the DLQ (`ts_in_future`).",
    )

    # bounds on what a worker and the trainer keep (rtrank.streams.worker.expiry, ...)
    state_ttl_s: float = Field(
        30 * 24 * 3600.0,
        ge=0,
        description="A user without an event for this long (by the broker's clock) is "
        "deleted from the user table, a tombstone in its changelog; back later, they start "
        "cold. 0 = kept forever.",
    )
    catalogue_max_items: int = Field(
        1_000_000,
        gt=0,
        description="Items the worker's catalogue copy holds; beyond, the item least "
        "recently written is dropped from the copy (it counts as available, uncategorised).",
    )
    trending_max_items: int = Field(
        200_000,
        gt=0,
        description="Items the trending counters track; beyond, the least popular half "
        "is forgotten.",
    )
    vocab_max_items: int = Field(
        1_000_000,
        ge=0,
        description="Trainer: embedding rows for items at most; beyond, a new item takes the "
        "row of the item the stream named longest ago (re-initialised; workers forget the "
        "old id with the next model update). 0 = no cap.",
    )

    # Kafka security: every Kafka client of rtrank connects with these
    # (rtrank.streams.kafka_security); validated together in _kafka_security_consistent.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every Kafka client connects: `SSL` encrypts (TLS), `SASL_*` "
        "authenticates a user, `SASL_SSL` both.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism of `SASL_*` protocols."
    )
    kafka_username: str = Field("", description="SASL user; required by `SASL_*` protocols.")
    kafka_password: SecretStr = Field(
        SecretStr(""),
        description="SASL password (never shown: masked in `rtrank config`, logs, /health).",
    )
    kafka_password_file: str = Field(
        "",
        description="File holding the SASL password (a mounted secret; one trailing newline "
        "ignored), read when a client connects; set this or RTRANK_KAFKA_PASSWORD, not both.",
    )
    kafka_ca_file: str = Field(
        "",
        description="PEM CA certificates that sign the brokers' certificates (`SSL`, "
        "`SASL_SSL`); empty = the system's trusted CAs.",
    )
    kafka_cert_file: str = Field(
        "", description="PEM client certificate for mutual TLS (with RTRANK_KAFKA_KEY_FILE)."
    )
    kafka_key_file: str = Field(
        "", description="PEM private key (unencrypted) of RTRANK_KAFKA_CERT_FILE."
    )

    def _set_variables(self, *names: str) -> str:
        """The variables among the fields ``names`` that hold a value, for an error that
        names each of them."""

        def held(value: object) -> bool:
            return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)

        return ", ".join(variable(name) for name in names if held(getattr(self, name)))

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        """Credentials a protocol would ignore are a mistake, not a default: refuse them
        at load rather than connect without what the operator meant to use."""
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol in ("SSL", "SASL_SSL")
        has_password = bool(self.kafka_password.get_secret_value() or self.kafka_password_file)
        if sasl and not self.kafka_username:
            raise ValueError(
                f"RTRANK_KAFKA_SECURITY_PROTOCOL={protocol} needs RTRANK_KAFKA_USERNAME"
            )
        if sasl and not has_password:
            raise ValueError(
                f"RTRANK_KAFKA_SECURITY_PROTOCOL={protocol} needs RTRANK_KAFKA_PASSWORD "
                "or RTRANK_KAFKA_PASSWORD_FILE"
            )
        login = self._set_variables("kafka_username", "kafka_password", "kafka_password_file")
        if not sasl and login:
            raise ValueError(
                f"{login} set, but used only with "
                f"RTRANK_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT or SASL_SSL, not {protocol}"
            )
        files = self._set_variables("kafka_ca_file", "kafka_cert_file", "kafka_key_file")
        if not tls and files:
            raise ValueError(
                f"{files} set, but used only with "
                f"RTRANK_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}"
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ValueError("RTRANK_KAFKA_CERT_FILE and RTRANK_KAFKA_KEY_FILE go together")
        return self

    @field_validator("experiment_file")
    @classmethod
    def _experiment_is_valid(cls, value: str) -> str:
        """The file is read and checked at load, each variant's overrides as settings."""
        experiment = load_experiment(value)
        for v in experiment.variants if experiment else ():
            try:
                cls(**v.overrides)
            except ValidationError as e:
                raise ValueError(f"variant {v.name!r}: {_one_line(e, v.overrides)}") from None
        return value

    @field_validator("min_insync_replicas")
    @classmethod
    def _not_above_replication(cls, value: int, info: ValidationInfo) -> int:
        """More in-sync replicas than replicas would refuse every acknowledged write."""
        replicas = info.data.get("replication_factor")
        if replicas is not None and value > replicas:
            raise ValueError(f"more than RTRANK_REPLICATION_FACTOR={replicas}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments only: the environment is read by `from_env` alone."""
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``RTRANK_*`` variables (``os.environ`` unless ``environ`` is given);
        a variable not set keeps its default, and so marks it (`model_fields_set`).

        Raises:
            SettingsError: a value is malformed; one line names each bad variable.
        """
        env = os.environ if environ is None else environ
        values = {name: env[variable(name)] for name in cls.model_fields if variable(name) in env}
        try:
            return cls(**values)
        except ValidationError as e:
            raise SettingsError(_one_line(e, values)) from None

    def replace(self, **changes: object) -> Settings:
        """A copy with ``changes``, validated like a new object (ValidationError otherwise).
        Fields set here or before count as set (`model_fields_set`)."""
        kept = {name: getattr(self, name) for name in self.model_fields_set}
        return type(self)(**{**kept, **changes})

    def isolated(self, run: str, **changes: object) -> Settings:
        """A copy whose app id and every topic name carry ``run`` (e.g. ``demo-20261123``),
        so a demo, benchmark or test run shares no topic or consumer group with another run
        on the same broker."""
        topics = {
            name: f"{run}.{getattr(self, name)}"
            for name in type(self).model_fields
            if name.endswith("_topic")
        }
        return self.replace(app_id=f"{self.app_id}-{run}", **topics, **changes)

    @property
    def bootstrap_servers(self) -> str:
        """``host:port[,host:port]`` for kafka-python, from the Faust URL."""
        return ",".join(part.split("://")[-1] for part in self.broker.split(";"))


def variable(name: str) -> str:
    """The environment variable of the field ``name``: ``top_k`` -> ``RTRANK_TOP_K``."""
    return f"{Settings.model_config['env_prefix']}{name.upper()}"


def to_env(settings: Settings) -> dict[str, str]:
    """Every field as its ``RTRANK_*`` variable: `Settings.from_env` of it equals
    ``settings``."""
    fields = type(settings).model_fields
    return {variable(name): env_text(getattr(settings, name)) for name in fields}


_PHRASES = {
    "int_parsing": "is not a valid integer",
    "int_from_float": "is not a valid integer",
    "float_parsing": "is not a valid number",
    "bool_parsing": "is not a valid boolean (true/false, yes/no, on/off, 1/0)",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _one_line(error: ValidationError, values: Mapping[str, str]) -> str:
    """``RTRANK_X='bad' is not …`` for each error, joined by ``; ``."""
    lines = []
    for e in error.errors(include_url=False):
        name = str(e["loc"][0]) if e["loc"] else ""
        ctx = e.get("ctx", {})
        if not name and e["type"] == "value_error":  # a rule across fields names its own
            lines.append(str(ctx["error"]))
            continue
        if e["type"] in _PHRASES:
            what = _PHRASES[e["type"]]
        elif e["type"] in _BOUNDS:
            bound = next(iter(ctx.values()))
            what = f"must be {_BOUNDS[e['type']]} {bound}"
        elif e["type"] == "literal_error":
            what = f"must be one of {ctx['expected']}"
        elif e["type"] == "value_error":
            what = f"is not valid: {ctx['error']}"
        else:
            what = f"is not valid: {e['msg'][0].lower()}{e['msg'][1:]}"
        lines.append(f"{variable(name)}={values.get(name, '')!r} {what}")
    return "; ".join(lines)
