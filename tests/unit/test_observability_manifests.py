"""What RadStream ships for a cluster's own Prometheus Operator and Grafana: the PodMonitor, rendered
as the other manifests are, scrapes the metrics port of exactly the pods the Triton Deployment makes;
the dashboard is valid Grafana JSON whose queries chart Triton's and dcgm-exporter's real metrics."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from radstream import resources
from radstream.config import validate
from radstream.kube import manifests
from radstream.sandbox.prometheus import scrape_config
from radstream.templating import substitute

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rs-triton:model-abc@sha256:" + "f" * 64
# Not the default namespace, so a PodMonitor pinned to "radstream" would fail.
CONFIG = validate({"deployment": "rs-obs", "triton": {"namespace": "rs-imaging"}}, "test")
TRITON_METRICS_PORT = 8002  # tritonserver's default --metrics-port; the image passes none

# Every nv_* metric Triton 24.08 (the pinned base image) documents in docs/user_guide/metrics.md.
TRITON_METRICS = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_count", "nv_inference_exec_count",
    "nv_inference_pending_request_count", "nv_inference_request_duration_us", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us", "nv_inference_request_summary_us", "nv_inference_queue_summary_us",
    "nv_inference_compute_input_summary_us", "nv_inference_compute_infer_summary_us",
    "nv_inference_compute_output_summary_us", "nv_inference_first_response_histogram_ms",
    "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_energy_consumption", "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes", "nv_cpu_utilization", "nv_cpu_memory_total_bytes",
    "nv_cpu_memory_used_bytes", "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes",
    "nv_cache_num_hits_per_model", "nv_cache_num_misses_per_model", "nv_cache_hit_duration_per_model",
    "nv_cache_miss_duration_per_model",
}
# Triton's gauges; every other nv_* metric above is a counter (or summary), meaningful only as a rate.
TRITON_GAUGES = {
    "nv_inference_pending_request_count", "nv_gpu_power_usage", "nv_gpu_power_limit", "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes", "nv_gpu_memory_used_bytes", "nv_cpu_utilization", "nv_cpu_memory_total_bytes",
    "nv_cpu_memory_used_bytes", "nv_pinned_memory_pool_total_bytes", "nv_pinned_memory_pool_used_bytes",
}
# dcgm-exporter's default counters the GPU row may use (all gauges).
DCGM_METRICS = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_POWER_USAGE",
                "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEM_COPY_UTIL"}
REQUIRED = {
    "nv_inference_request_success", "nv_inference_request_failure", "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us", "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us", "nv_inference_exec_count", "nv_inference_count",
    "nv_inference_pending_request_count", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE",
}
GPU_ROW = "GPU (GPU profile only)"
METRIC = re.compile(r"\b(?:nv_[a-z_]+|DCGM_[A-Z_]+)")


# --- PodMonitor ---------------------------------------------------------------------------------

def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions, ANDed)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {"In": key in labels and labels[key] in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


@pytest.fixture(scope="module")
def podmonitor() -> dict[str, Any]:
    text = resources.manifest("prometheus", "podmonitor.yaml").read_text()
    return yaml.safe_load(substitute(text, {"Name": manifests.DEPLOYMENT, "Namespace": CONFIG.triton.namespace}))


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return manifests.deployment(CONFIG, resources.manifest("k8s"), IMAGE)


def test_the_podmonitor_takes_the_placeholders_the_other_manifests_take():
    text = resources.manifest("prometheus", "podmonitor.yaml").read_text()
    assert text.startswith("# "), "a comment on top says why the file exists"
    assert set(re.findall(r"\$\{(\w+)\}", text)) == {"Name", "Namespace"}


def test_the_podmonitor_lives_beside_the_deployment_and_looks_only_there(podmonitor, deployment):
    assert (podmonitor["apiVersion"], podmonitor["kind"]) == ("monitoring.coreos.com/v1", "PodMonitor")
    assert podmonitor["metadata"]["name"] == manifests.DEPLOYMENT
    assert podmonitor["metadata"]["namespace"] == deployment["metadata"]["namespace"] == "rs-imaging"
    # Absent, the Operator looks in the PodMonitor's own namespace; present, it must name that one.
    names = (podmonitor["spec"].get("namespaceSelector") or {}).get("matchNames", [podmonitor["metadata"]["namespace"]])
    assert names == ["rs-imaging"]
    assert not (podmonitor["spec"].get("namespaceSelector") or {}).get("any")


def test_the_podmonitor_selects_the_triton_pods_and_nothing_else(podmonitor, deployment):
    selector = podmonitor["spec"]["selector"]
    assert selector.get("matchLabels") or selector.get("matchExpressions"), "an empty selector selects every pod"
    assert selects(selector, deployment["spec"]["template"]["metadata"]["labels"])
    plugin = manifests.device_plugin(CONFIG, resources.manifest("k8s"))
    assert not selects(selector, plugin["spec"]["template"]["metadata"]["labels"])
    # The Deployment's own selector picks out the same pods: nothing in the PodMonitor's is looser than the app name.
    assert selector["matchLabels"]["app.kubernetes.io/name"] == deployment["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/name"] == manifests.APP_NAME


def test_the_podmonitor_scrapes_tritons_metrics_port_every_15_s(podmonitor, deployment):
    (endpoint,) = podmonitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")
    assert "targetPort" not in endpoint  # deprecated in the Operator; `port` names a container port
    (triton,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"]
    ports = {p.get("name"): p["containerPort"] for p in triton["ports"]}
    assert ports.get(endpoint["port"]) == TRITON_METRICS_PORT, (endpoint["port"], ports)


def test_the_podmonitor_labels_targets_as_the_sandbox_prometheus_does(podmonitor):
    """`radstream watch` reads either Prometheus alike: same job name and same target labels."""
    (job,) = scrape_config("http://127.0.0.1:8002/metrics")["scrape_configs"]
    (static,) = job["static_configs"]
    spec = podmonitor["spec"]
    assert podmonitor["spec"]["selector"]["matchLabels"][spec["jobLabel"]] == job["job_name"]
    # Prometheus turns a pod label into a target label by replacing what is not [a-zA-Z0-9_] with "_".
    assert {re.sub(r"[^a-zA-Z0-9_]", "_", label) for label in spec.get("podTargetLabels", [])} == set(static["labels"])


# --- Grafana dashboard --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dashboard_text() -> str:
    return resources.manifest("grafana", "triton-dashboard.json").read_text()


@pytest.fixture(scope="module")
def dashboard(dashboard_text) -> dict[str, Any]:
    return json.loads(dashboard_text)


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and those folded inside collapsed rows included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels") or [])
    return found


def charts(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


def metrics_in(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def exprs(panels: list[dict[str, Any]]) -> list[str]:
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_dashboard_is_a_grafana_dashboard(dashboard):
    assert dashboard["title"] and dashboard["uid"] and dashboard.get("id") is None  # id: Grafana assigns it on import
    assert 36 <= dashboard["schemaVersion"] <= 41
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in all_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    assert "not passed through radstream.templating" in dashboard["description"]


def test_the_only_placeholders_are_grafanas_own_variables(dashboard, dashboard_text):
    """Imported as-is: radstream.templating would take ${datasource} for a missing value, and any
    other ${Name} would reach Grafana unfilled."""
    with pytest.raises(KeyError):
        substitute(dashboard_text, {})
    declared = {v["name"] for v in dashboard["templating"]["list"]}
    used = set(re.findall(r"\$\{(\w+)(?::\w+)?\}", dashboard_text)) | set(re.findall(r"\$(\w+)", dashboard_text))
    assert used - {"__interval", "__rate_interval", "__range"} <= declared, used - declared


def test_every_chart_queries_the_prometheus_chosen_in_the_datasource_variable(dashboard):
    (variable,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    for panel in charts(dashboard):
        assert panel["type"] == "timeseries", panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for item in (panel, *panel["targets"]):
            assert item["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert all(t["expr"].strip() and metrics_in(t["expr"]) for t in panel["targets"]), panel["title"]


def test_the_charts_cover_tritons_and_dcgms_metrics_and_name_only_real_ones(dashboard):
    used = set().union(*(metrics_in(e) for e in exprs(charts(dashboard))))
    assert REQUIRED <= used, sorted(REQUIRED - used)
    assert {m for m in used if m.startswith("nv_")} <= TRITON_METRICS, sorted(m for m in used if m.startswith("nv_")
                                                                            and m not in TRITON_METRICS)
    assert {m for m in used if m.startswith("DCGM_")} <= DCGM_METRICS


def test_counters_are_charted_as_rates(dashboard):
    for expr in exprs(charts(dashboard)):
        for found in METRIC.finditer(expr):
            if found.group() in TRITON_METRICS - TRITON_GAUGES:
                assert re.search(r"\b(?:rate|increase)\(\s*$", expr[:found.start()]), (found.group(), expr)
            else:  # a rate of a gauge is meaningless
                assert not re.search(r"\b(?:rate|irate|increase)\(\s*$", expr[:found.start()]), (found.group(), expr)


def test_durations_are_per_request_averages_in_ms(dashboard):
    """Triton's *_duration_us are cumulative µs: over the success rate they give µs per request, / 1000 ms."""
    timed = [p for p in charts(dashboard) if any(m.endswith("_duration_us") for e in exprs([p]) for m in metrics_in(e))]
    assert {m for p in timed for e in exprs([p]) for m in metrics_in(e) if m.endswith("_duration_us")} == {
        "nv_inference_queue_duration_us", "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us", "nv_inference_compute_output_duration_us"}
    for panel in timed:
        assert panel["fieldConfig"]["defaults"]["unit"] == "ms", panel["title"]
        for expr in exprs([panel]):
            assert "nv_inference_request_success" in expr and re.search(r"/\s*1000\s*$", expr), expr


def test_the_batch_size_is_inferences_over_batch_executions(dashboard):
    ratios = [(left, right) for left, slash, right in (e.partition("/") for e in exprs(charts(dashboard))) if slash
              and metrics_in(left) == {"nv_inference_count"} and metrics_in(right) == {"nv_inference_exec_count"}]
    assert ratios, "no average batch size (nv_inference_count / nv_inference_exec_count)"


def test_dcgm_metrics_sit_in_the_gpu_row_only(dashboard):
    (row,) = [p for p in dashboard["panels"] if p["type"] == "row" and p["title"] == GPU_ROW]
    # Collapsed: on a CPU profile there is no dcgm-exporter and the row's charts stay empty.
    assert row["collapsed"] is True and row["panels"]
    inside = exprs(row["panels"])
    assert all(metrics_in(e) and all(m.startswith("DCGM_") for m in metrics_in(e)) for e in inside), inside
    outside = exprs([p for p in dashboard["panels"] if p["type"] != "row"])
    assert not any(m.startswith("DCGM_") for e in outside for m in metrics_in(e))
    units = {p["targets"][0]["expr"]: p["fieldConfig"]["defaults"]["unit"] for p in row["panels"]}
    assert units == {"DCGM_FI_DEV_GPU_UTIL": "percent", "DCGM_FI_DEV_FB_USED": "mbytes",  # MiB
                     "DCGM_FI_DEV_POWER_USAGE": "watt"}
