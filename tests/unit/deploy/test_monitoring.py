"""The Grafana dashboard asks only for metrics rtrank exposes, and the compose `monitoring`
profile provisions it (files that exist, a datasource the panels name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from rtrank.streams.settings import Settings
from rtrank.streams.trainer.metrics import TrainerMetrics
from rtrank.streams.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
MONITORING = ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "rtrank.json"
SUFFIXES = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose, labelled children or not."""
    return {
        family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]
    }


def panel_targets() -> list[dict]:
    return [t for p in json.loads(DASHBOARD.read_text())["panels"] for t in p["targets"]]


def compose_service(name: str) -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][name]


def test_every_dashboard_query_names_only_metrics_the_worker_or_trainer_expose() -> None:
    known = exposed_names(Metrics().registry) | exposed_names(TrainerMetrics().registry)
    for target in panel_targets():
        names = set(re.findall(r"\brtrank_\w+", target["expr"]))
        assert names, target["expr"]
        assert names <= known, (target["expr"], names - known)


def test_the_dashboard_has_the_panels_an_operator_opens_first() -> None:
    exprs = " ".join(t["expr"] for t in panel_targets())
    for metric in (
        "rtrank_events_total",  # events in
        "rtrank_answer_seconds_count",  # events answered
        "rtrank_consumer_lag",
        "rtrank_answer_seconds_bucket",  # p99 latency
        "rtrank_online_hits_total",  # Hit@10 per version
        "rtrank_dead_letters_total",
        "rtrank_rebalances_total",
        "rtrank_trainer_published_version",
        "rtrank_trainer_lag",
    ):
        assert metric in exprs, metric


def test_every_panel_reads_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    uids = {d["uid"] for d in datasources}
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert all(t["datasource"]["uid"] in uids for t in panel["targets"])


def test_compose_monitoring_services_mount_files_that_exist() -> None:
    for name in ("prometheus", "grafana"):
        service = compose_service(name)
        assert service["profiles"] == ["monitoring"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), (name, source)


def test_grafana_loads_dashboards_from_where_compose_mounts_them() -> None:
    mounts = {
        target: ROOT / source
        for source, target, *_ in (v.split(":") for v in compose_service("grafana")["volumes"])
    }
    providers = yaml.safe_load(
        mounts["/etc/grafana/provisioning/dashboards"].joinpath("rtrank.yml").read_text()
    )["providers"]
    (path,) = {p["options"]["path"] for p in providers}
    assert mounts[path] == DASHBOARD.parent


def test_prometheus_scrapes_the_worker_and_trainer_metrics_ports() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    ports = {job["job_name"]: job["dns_sd_configs"][0]["port"] for job in config["scrape_configs"]}
    defaults = Settings()
    assert ports == {
        "rtrank-worker": defaults.web_port,
        "rtrank-trainer": defaults.trainer_metrics_port,
    }
