"""The custom resources in k8s/ against the published CRD JSON Schemas vendored in k8s/schemas/
(kubernetes-validate, in CI's container stage, checks the core kinds), and what ties the
manifests to each other and to the service: the KServe runtime and its example, and the load
autoscaler with its prometheus-adapter rule."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
SCHEMAS = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "serving.kserve.io/servingruntime_v1alpha1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io/inferenceservice_v1beta1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
}


@cache
def validator(api_version: str, kind: str) -> Any:
    schema = json.loads((K8S / "schemas" / SCHEMAS[api_version, kind]).read_text())
    return jsonschema_rs.validator_for(schema)


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def manifest(relative: str) -> dict[str, Any]:
    (doc,) = documents(K8S / relative)
    return doc


def custom_resources() -> list[tuple[str, dict[str, Any]]]:
    """Every document under k8s/ of a kind with a vendored schema."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for doc in documents(path):
            if (doc.get("apiVersion"), doc.get("kind")) in SCHEMAS:
                found.append((str(path.relative_to(REPO)), doc))
    return found


def schema_errors(doc: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}" for e in validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)]


def test_the_vendored_schemas_cover_every_custom_resource_shipped() -> None:
    kinds = {doc["kind"] for _, doc in custom_resources()}
    assert kinds == {"ServingRuntime", "InferenceService", "ServiceMonitor"}


@pytest.mark.parametrize(("path", "doc"), custom_resources(), ids=lambda v: v if isinstance(v, str) else "")
def test_custom_resources_are_valid_against_their_crd_schema(path: str, doc: dict[str, Any]) -> None:
    assert schema_errors(doc) == []
    # The schemas leave metadata open: the name is what others refer to.
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"])


def misspell(doc: dict[str, Any], path: tuple[str | int, ...], wrong: str) -> dict[str, Any]:
    """A copy with the key at ``path`` renamed to ``wrong``."""
    broken = copy.deepcopy(doc)
    parent = broken
    for key in path[:-1]:
        parent = parent[key]
    parent[wrong] = parent.pop(path[-1])  # type: ignore[union-attr]
    return broken


@pytest.mark.parametrize(
    ("relative", "path", "wrong"),
    [
        ("kserve/servingruntime.yaml", ("spec", "protocolVersions"), "protocolVersion"),
        ("kserve/servingruntime.yaml", ("spec", "containers", 0, "readinessProbe"), "readinessprobe"),
        ("kserve/servingruntime.yaml", ("spec", "supportedModelFormats", 0, "autoSelect"), "autoselect"),
        ("kserve/inferenceservice.yaml", ("spec", "predictor", "model", "storageUri"), "storageURI"),
        ("kserve/inferenceservice.yaml", ("spec", "predictor", "scaleTarget"), "scaletarget"),
        ("extras/servicemonitor.yaml", ("spec", "endpoints", 0, "interval"), "scrapeInterval"),
    ],
)
def test_the_schemas_catch_a_misspelt_field(relative: str, path: tuple[str | int, ...], wrong: str) -> None:
    doc = manifest(relative)
    assert schema_errors(doc) == []
    errors = schema_errors(misspell(doc, path, wrong))
    assert errors and any(wrong in e for e in errors), errors


def test_the_schemas_catch_a_wrong_type() -> None:
    doc = manifest("kserve/inferenceservice.yaml")
    doc["spec"]["predictor"]["scaleMetric"] = "gpu"
    assert any("scaleMetric" in e for e in schema_errors(doc))


# -- the KServe runtime ------------------------------------------------------------------------


def runtime_container() -> dict[str, Any]:
    (container,) = manifest("kserve/servingruntime.yaml")["spec"]["containers"]
    return container


def core_pod() -> dict[str, Any]:
    return manifest("deployment.yaml")["spec"]["template"]["spec"]


def test_the_runtime_serves_mnt_models_over_v2_on_the_service_port() -> None:
    from service.settings import Settings

    runtime = manifest("kserve/servingruntime.yaml")
    container = runtime_container()
    assert container["name"] == "kserve-container"  # the container KServe merges the model into
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TEXTSERVE_MODEL_PATH"] == "/mnt/models"
    assert runtime["spec"]["protocolVersions"] == ["v2", "grpc-v2"]
    (port,) = container["ports"]  # Knative routes to exactly one
    assert port["containerPort"] == Settings().port and port["name"] in ("http1", "h2c")
    assert "TEXTSERVE_PORT" not in env  # Knative's PORT decides
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == port["containerPort"]
    core = core_pod()["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == core["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == core["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert "lifecycle" not in container and "startupProbe" not in container  # Knative refuses them


def test_the_runtime_is_locked_down_as_the_core_deployment() -> None:
    container, pod = runtime_container(), core_pod()
    core = pod["containers"][0]
    security = container["securityContext"]
    for key, value in core["securityContext"].items():
        assert security[key] == value, key
    assert security["runAsUser"] == pod["securityContext"]["runAsUser"]
    assert security["seccompProfile"] == pod["securityContext"]["seccompProfile"]
    assert container["resources"] == core["resources"]
    assert [m["mountPath"] for m in container["volumeMounts"]] == [m["mountPath"] for m in core["volumeMounts"]]


def test_the_example_inference_service_runs_on_the_runtime_under_the_model_name(shipped_bundle_dir: Path) -> None:
    from service.bundle.format import read_manifest

    runtime = manifest("kserve/servingruntime.yaml")
    isvc = manifest("kserve/inferenceservice.yaml")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = runtime["spec"]["supportedModelFormats"]
    assert {"name": model["modelFormat"]["name"], "version": model["modelFormat"]["version"]} in [
        {"name": f["name"], "version": f["version"]} for f in formats
    ]
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["storageUri"].endswith("/")
    # V2 routes answer for the bundle's own name: /v2/models/<isvc name>/infer must be it.
    assert isvc["metadata"]["name"] == read_manifest(shipped_bundle_dir).name


def test_the_kustomization_lists_the_runtime_and_sets_its_image_like_the_base() -> None:
    kserve = yaml.safe_load((K8S / "kserve" / "kustomization.yaml").read_text())
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kserve["resources"]) == ["inferenceservice.yaml", "servingruntime.yaml"]
    assert kserve["images"] == base["images"]
    assert runtime_container()["image"] == base["images"][0]["name"]


# -- autoscaling on load -----------------------------------------------------------------------


def adapter_rules() -> list[dict[str, Any]]:
    config_map = manifest("extras/prometheus-adapter.yaml")
    assert (config_map["apiVersion"], config_map["kind"]) == ("v1", "ConfigMap")
    rules: list[dict[str, Any]] = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return rules


def test_the_load_hpa_replaces_the_cpu_one_for_the_same_deployment() -> None:
    load, cpu = manifest("extras/hpa-load.yaml"), manifest("hpa.yaml")
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert (load["apiVersion"], load["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert load["metadata"]["name"] == cpu["metadata"]["name"]  # applying it replaces the CPU HPA
    assert load["metadata"]["namespace"] == base["namespace"]
    assert load["spec"]["scaleTargetRef"] == cpu["spec"]["scaleTargetRef"]
    assert load["spec"]["scaleTargetRef"]["name"] == manifest("deployment.yaml")["metadata"]["name"]
    (metric,) = load["spec"]["metrics"]  # CPU beside it would keep every pod at maxReplicas
    assert metric["type"] == "Pods" and metric["pods"]["target"]["type"] == "AverageValue"


def test_the_adapter_serves_the_metric_the_hpa_asks_for_from_a_series_the_service_exports() -> None:
    from service.observability.metrics import Metrics

    (metric,) = manifest("extras/hpa-load.yaml")["spec"]["metrics"]
    wanted = metric["pods"]["metric"]["name"]
    serving = [r for r in adapter_rules() if r["name"]["as"] == wanted]
    assert len(serving) == 1, f"no prometheus-adapter rule names {wanted}"
    rule = serving[0]
    series = re.match(r"(\w+)\{", rule["seriesQuery"])
    assert series is not None
    assert re.search(rule["name"]["matches"], series.group(1))  # the adapter renames the series it found
    exported = {m.name for m in Metrics().registry.collect()}
    assert series.group(1) in exported
    # Per pod and namespace, as a Pods metric needs.
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]


def test_the_knative_target_of_the_example_is_the_hpa_target() -> None:
    (metric,) = manifest("extras/hpa-load.yaml")["spec"]["metrics"]
    predictor = manifest("kserve/inferenceservice.yaml")["spec"]["predictor"]
    assert predictor["scaleMetric"] == "concurrency"
    assert predictor["scaleTarget"] == int(metric["pods"]["target"]["averageValue"])


def test_the_repository_component_serves_a_volume_in_poll_mode() -> None:
    """k8s/components/repository: a new version reaches running pods through the volume."""
    from service.settings import Settings

    component = K8S / "components" / "repository"
    settings = documents(component / "configmap-patch.yaml")[0]["data"]
    Settings(**{k.removeprefix("TEXTSERVE_").lower(): v for k, v in settings.items()})  # valid values
    assert settings["TEXTSERVE_MODEL_CONTROL_MODE"] == "poll"
    pod = documents(component / "deployment-patch.yaml")[0]["spec"]["template"]["spec"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["name"] == core_pod()["containers"][0]["name"]
    assert mount["mountPath"] == settings["TEXTSERVE_MODEL_REPOSITORY"] and mount["readOnly"] is True
    (volume,) = pod["volumes"]
    claim = documents(component / "pvc.yaml")[0]
    assert volume["name"] == mount["name"] and volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert "ReadOnlyMany" in claim["spec"]["accessModes"]
    base = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert claim["metadata"]["namespace"] == base["namespace"]


def test_compose_serves_the_checkouts_models_as_a_repository_in_poll_mode() -> None:
    compose = yaml.safe_load((K8S.parent / "docker-compose.yml").read_text())
    api, export = compose["services"]["api"], compose["services"]["export"]
    assert api["environment"]["TEXTSERVE_MODEL_CONTROL_MODE"] == "poll"
    assert api["environment"]["TEXTSERVE_MODEL_REPOSITORY"] == "/app/models"
    assert "${MODELS_DIR:-./models}:/app/models:ro" in api["volumes"]
    assert "${MODELS_DIR:-./models}:/app/models" in export["volumes"]  # the export writes where the api reads
