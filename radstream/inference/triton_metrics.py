"""Triton's own figures from a Prometheus that scrapes its metrics endpoint (the sandbox's, or the
operator's through manifests/prometheus/podmonitor.yaml): request rate, and the average queue and
compute time per request over a recent window, from Triton's nv_inference_* counters."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

# Per-request averages: a duration counter's rate over the success counter's rate, µs -> ms.
QUERIES = {
    "requests_per_s": "sum(rate(nv_inference_request_success[{w}]))",
    "queue_ms": "sum(rate(nv_inference_queue_duration_us[{w}])) / sum(rate(nv_inference_request_success[{w}])) / 1000",
    "compute_ms": "(sum(rate(nv_inference_compute_input_duration_us[{w}])) + sum(rate(nv_inference_compute_infer_duration_us[{w}]))"
                  " + sum(rate(nv_inference_compute_output_duration_us[{w}]))) / sum(rate(nv_inference_request_success[{w}])) / 1000",
}


def instant(prometheus_url: str, promql: str, timeout: float = 5.0) -> float | None:
    """One instant query's single value; None when there is none (no traffic: 0/0 gives NaN)."""
    url = f"{prometheus_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = json.load(response)
    results = (body.get("data") or {}).get("result") or []
    if not results:
        return None
    value = float(results[0]["value"][1])
    return None if value != value else round(value, 3)  # NaN


def triton_figures(prometheus_url: str, window_s: int) -> dict[str, float | None]:
    window = f"{max(int(window_s), 30)}s"  # rate() needs at least two scrapes in its range
    return {key: instant(prometheus_url, query.format(w=window)) for key, query in QUERIES.items()}
