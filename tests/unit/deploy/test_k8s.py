"""deploy/k8s/: valid Kubernetes objects (offline, against the schemas kubernetes-validate
ships), settings that rtrank knows, and workers laid out as the README says."""

from __future__ import annotations

import copy
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from rtrank.streams.settings import Settings, variable

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
# The oldest Kubernetes the manifests claim, and the newest the installed package knows.
COMPONENT = "app.kubernetes.io/component"
VERSIONS = sorted({"1.31.0", kubernetes_validate.latest_version()})


def manifests() -> list[dict]:
    files = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    return [doc for name in files for doc in yaml.safe_load_all((K8S / name).read_text())]


def one(kind: str, component: str | None = None) -> dict:
    (found,) = [
        m
        for m in manifests()
        if m["kind"] == kind and component in (None, m["metadata"].get("labels", {}).get(COMPONENT))
    ]
    return found


def settings_data() -> dict[str, str]:
    return one("ConfigMap")["data"]


def container(workload: dict) -> dict:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    return c


def test_the_kustomization_lists_every_manifest() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_is_a_valid_kubernetes_object(version: str) -> None:
    for manifest in manifests():
        kubernetes_validate.validate(manifest, version, strict=True)


def test_the_validation_rejects_a_field_kubernetes_does_not_know() -> None:
    broken = copy.deepcopy(one("StatefulSet", "worker"))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_every_variable_of_the_config_map_or_a_container_is_a_setting() -> None:
    known = {variable(name) for name in Settings.model_fields}
    env = {
        e["name"]
        for kind in ("StatefulSet", "Deployment")
        for e in container(one(kind)).get("env", [])
    }
    assert set(settings_data()) | env <= known


def test_the_config_map_holds_valid_settings() -> None:
    settings = Settings.from_env(settings_data())
    assert settings.broker.startswith("kafka://")


def test_workers_keep_rocksdb_on_a_volume_per_pod_at_the_data_dir() -> None:
    workers = one("StatefulSet", "worker")
    (claim,) = workers["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(workers)["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == str(Settings.from_env(settings_data()).data_dir)


def test_worker_probes_ask_health_on_the_web_port() -> None:
    worker = container(one("StatefulSet", "worker"))
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    web_port = Settings.from_env(settings_data()).web_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = worker[probe]["httpGet"]
        assert get["path"] == "/health"
        assert ports[get["port"]] == web_port


def test_the_workers_service_is_headless_and_selects_the_worker_pods() -> None:
    workers, service = one("StatefulSet", "worker"), one("Service", "worker")
    assert workers["spec"]["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = workers["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_exactly_one_trainer_runs_even_during_a_rollout() -> None:
    trainer = one("Deployment", "trainer")
    assert trainer["spec"]["replicas"] == 1
    assert trainer["spec"]["strategy"]["type"] == "Recreate"


def test_the_trainer_exposes_its_metrics_port() -> None:
    trainer = container(one("Deployment", "trainer"))
    port = Settings.from_env(settings_data()).trainer_metrics_port
    assert [p["containerPort"] for p in trainer["ports"]] == [port]


def test_every_container_has_resources_requested_and_a_memory_limit() -> None:
    for kind in ("StatefulSet", "Deployment"):
        resources = container(one(kind))["resources"]
        assert {"cpu", "memory"} <= resources["requests"].keys()
        assert "memory" in resources["limits"]


def test_pods_listen_on_every_interface() -> None:
    """Probes, Prometheus and the other workers reach a pod from outside it."""
    assert Settings.from_env(settings_data()).web_bind == "0.0.0.0"
