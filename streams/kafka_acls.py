"""The least-privilege ACLs of each rtrank role on a cluster with an authorizer.

    rtrank kafka acls --role worker --principal User:worker          # apply (as an admin)
    rtrank kafka acls --role worker --principal User:worker --show   # print only

What each role does, and so needs (topic names from the settings):

- every role runs `ensure_topics` at start: **Describe** every rtrank topic (to list them
  and their partitions) and **Create** them (only a missing one is created).
- ``worker``: **Read** the events, items, rank requests and model updates; **Write** the
  lists, dead letters, training examples and rank responses; **Read**/**Write** the
  changelogs and Faust's leader topic (named after the app id: a prefix ACL, since Faust
  names one changelog per table); **Read** (join, commit) and **Describe** (lag metrics)
  its consumer group, the app id.
- ``trainer``: **Read** the training examples; **Read**/**Write** model updates (it resumes
  from its own versions), **DescribeConfigs**/**AlterConfigs** (their retention) and
  **Delete** (it deletes records before the previous snapshot). It uses no consumer group.
- ``producer``: **Write** the events.

No role needs a cluster ACL: since Kafka 3.0 an idempotent producer needs Write on its
topics only (KIP-679), not IdempotentWrite on the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
)

from rtrank.streams.kafka_security import client_config
from rtrank.streams.settings import Settings
from rtrank.streams.worker.topics_and_tables import topic_names

Role = Literal["worker", "trainer", "producer"]
ROLES: tuple[Role, ...] = ("worker", "trainer", "producer")


@dataclass(frozen=True)
class Grant:
    """Operations allowed on one resource: a topic or group, by name or by prefix."""

    resource: Literal["topic", "group"]
    name: str
    operations: tuple[str, ...]
    prefixed: bool = False

    def __str__(self) -> str:
        name = f"{self.name}*" if self.prefixed else self.name
        return f"{self.resource} {name}: {', '.join(self.operations)}"


def grants(settings: Settings, role: Role) -> list[Grant]:
    """What ``role`` may do, and nothing more (see the module's docstring for why)."""
    return [*shared_grants(settings), *own_grants(settings, role)]


def shared_grants(settings: Settings) -> list[Grant]:
    """What every role needs: `ensure_topics` at its start."""
    return [Grant("topic", name, ("Describe", "Create")) for name in topic_names(settings)]


def own_grants(settings: Settings, role: Role) -> list[Grant]:
    """What ``role`` needs besides `shared_grants`."""
    s = settings
    if role == "producer":
        return [Grant("topic", s.events_topic, ("Write",))]
    if role == "trainer":
        return [
            Grant("topic", s.training_topic, ("Read",)),
            Grant(
                "topic",
                s.model_updates_topic,
                ("Read", "Write", "Delete", "DescribeConfigs", "AlterConfigs"),
            ),
        ]
    reads = (s.events_topic, s.items_topic, s.rank_requests_topic, s.model_updates_topic)
    writes = (
        s.recommendations_topic,
        s.dlq_topic,
        s.training_topic,
        s.items_dlq_topic,
        s.rank_responses_topic,
    )
    return [
        *(Grant("topic", name, ("Read",)) for name in reads),
        *(Grant("topic", name, ("Write",)) for name in writes),
        Grant("topic", f"{s.app_id}-", ("Read", "Write"), prefixed=True),
        Grant("group", s.app_id, ("Read", "Describe")),
    ]


def acls(settings: Settings, role: Role, principal: str) -> list[ACL]:
    """The kafka-python ACL bindings of ``role`` for ``principal`` (``User:name``), from
    any host."""
    return [
        ACL(
            principal=principal,
            host="*",
            operation=ACLOperation[_constant(operation)],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[grant.resource.upper()],
                grant.name,
                ACLResourcePatternType.PREFIXED
                if grant.prefixed
                else ACLResourcePatternType.LITERAL,
            ),
        )
        for grant in grants(settings, role)
        for operation in grant.operations
    ]


def apply(settings: Settings, role: Role, principal: str, timeout_s: float = 30.0) -> int:
    """Create ``role``'s ACLs for ``principal`` on the cluster, connecting with
    ``settings`` (a principal allowed to alter the cluster's ACLs: a super user). ACLs
    that exist already are not an error. Returns how many bindings were sent.

    Raises:
        RuntimeError: the broker refused some; the message names the first refusal.
    """
    bindings = acls(settings, role, principal)
    admin = KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
        **client_config(settings),
    )
    try:
        result = admin.create_acls(bindings)
    finally:
        admin.close()
    if result["failed"]:
        acl, error = result["failed"][0]
        raise RuntimeError(
            f"{len(result['failed'])} of {len(bindings)} ACLs refused, first "
            f"{acl.operation.name} on {acl.resource_pattern.resource_name}: {error}"
        )
    return len(bindings)


def markdown(settings: Settings) -> str:
    """The ACL table of every role (docs/operating.md's, with the default settings)."""
    topics = ", ".join(f"`{name}`" for name in topic_names(settings))
    lines = ["| role | resource | operations |", "|---|---|---|"]
    lines.append(f"| every role | topics {topics} | Describe, Create |")
    for role in ROLES:
        for grant in own_grants(settings, role):
            name = f"`{grant.name}` (prefix)" if grant.prefixed else f"`{grant.name}`"
            lines.append(f"| {role} | {grant.resource} {name} | {', '.join(grant.operations)} |")
    return "\n".join(lines) + "\n"


def _constant(operation: str) -> str:
    """``DescribeConfigs`` -> ``DESCRIBE_CONFIGS`` (kafka-python's enum names)."""
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(operation)).upper()
