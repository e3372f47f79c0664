"""Each role's least-privilege ACLs: what docs/operating.md lists is what `rtrank kafka acls`
grants, and a role gets no write it does not need."""

from __future__ import annotations

from pathlib import Path

from kafka.admin import ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourceType

from rtrank.streams.kafka_acls import acls, grants, markdown, own_grants
from rtrank.streams.settings import Settings

OPERATING = Path(__file__).resolve().parents[3] / "docs" / "operating.md"


def writes(settings: Settings, role: str) -> set[str]:
    return {g.name for g in grants(settings, role) if "Write" in g.operations}


def test_the_readme_lists_exactly_the_acls_granted() -> None:
    assert markdown(Settings()) in OPERATING.read_text()


def test_only_the_trainer_may_write_model_updates() -> None:
    s = Settings()
    assert [
        r for r in ("worker", "trainer", "producer") if s.model_updates_topic in writes(s, r)
    ] == ["trainer"]


def test_a_producer_writes_the_events_topic_only() -> None:
    assert own_grants(Settings(), "producer") == [
        g for g in grants(Settings(), "producer") if g.operations == ("Write",)
    ]
    assert writes(Settings(), "producer") == {"events"}


def test_the_worker_reads_its_group_and_writes_its_changelogs_by_prefix() -> None:
    s = Settings().isolated("run1")
    bindings = acls(s, "worker", "User:w")
    group = [a for a in bindings if a.resource_pattern.resource_type == ResourceType.GROUP]
    assert {a.resource_pattern.resource_name for a in group} == {s.app_id}
    prefixed = [
        a for a in bindings if a.resource_pattern.pattern_type == ACLResourcePatternType.PREFIXED
    ]
    assert {a.resource_pattern.resource_name for a in prefixed} == {f"{s.app_id}-"}
    assert {a.operation for a in prefixed} == {ACLOperation.READ, ACLOperation.WRITE}


def test_bindings_allow_the_principal_from_any_host() -> None:
    bindings = acls(Settings(), "trainer", "User:t")
    assert {(a.principal, a.host, a.permission_type) for a in bindings} == {
        ("User:t", "*", ACLPermissionType.ALLOW)
    }
    assert ACLOperation.ALTER_CONFIGS in {a.operation for a in bindings}


def test_no_role_is_granted_anything_on_the_cluster() -> None:
    for role in ("worker", "trainer", "producer"):
        types = {a.resource_pattern.resource_type for a in acls(Settings(), role, "User:x")}
        assert ResourceType.CLUSTER not in types
