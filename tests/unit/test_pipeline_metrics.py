"""The pipeline's embedded-metric-format line: the figures an alarm reads, and nothing that names a
study; and the sandbox reads it back as CloudWatch Logs would (radstream.sandbox.lambda_metrics)."""

import json

from radstream.pipeline.metrics import embedded_metrics_line
from radstream.pipeline.results import telemetry_event
from radstream.sandbox.lambda_metrics import embedded_metrics, invocation_metrics


def event(status: str = "SUCCESS", **extra) -> dict:
    return telemetry_event(study_id="PATIENT-LIKE-ID-42", status=status, input_key="incoming/SMITH_JOHN.dcm",
                           stage_ms={"validate": 10.0, "prepare": 20.0, "inference": 300.0, "store": 5.0}, **extra)


def test_a_success_and_a_failure_give_the_rate_and_latencies_and_name_no_study():
    ok = json.loads(embedded_metrics_line(event(), "rs-dep", 1_700_000_000_000))
    bad = json.loads(embedded_metrics_line(event("FAILED", error={"stage": "validate", "error_type": "IdentifiedDicom",
                                                                  "message": "PatientName is present"}),
                                           "rs-dep", 1_700_000_000_000))
    assert (ok["StudyFailed"], bad["StudyFailed"], ok["Studies"]) == (0, 1, 1)
    assert ok["EndToEndLatency"] == 335.0 and ok["InferenceLatency"] == 300.0
    [directive] = ok["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "RadStream" and directive["Dimensions"] == [["Deployment"]]
    assert {m["Name"] for m in directive["Metrics"]} >= {"StudyFailed", "EndToEndLatency", "ValidateLatency"}
    assert bad["Outcome"] == "FAILED" and bad["ErrorType"] == "IdentifiedDicom"
    # A failure also counts under its reason, so failures by reason need no log query.
    assert [d["Dimensions"] for d in bad["_aws"]["CloudWatchMetrics"]] == [[["Deployment"]], [["Deployment", "ErrorType"]]]
    for line in (ok, bad):
        text = json.dumps(line)
        assert "PATIENT-LIKE-ID-42" not in text and "SMITH" not in text and "PatientName" not in text


def test_a_known_model_gets_its_outcome_and_latency_by_model_name():
    scored = event(result={"model_name": "radstream_cxr", "model_version": "1", "top_finding": {"label": "Effusion"}})
    line = json.loads(embedded_metrics_line(scored, "rs-dep", 1_700_000_000_000))
    by_model = line["_aws"]["CloudWatchMetrics"][1]
    assert by_model["Dimensions"] == [["Deployment", "ModelName"]] and line["ModelName"] == "radstream_cxr"
    assert [m["Name"] for m in by_model["Metrics"]] == ["StudyFailed", "EndToEndLatency"]


def test_the_sandbox_extracts_each_metric_with_its_dimension_and_ignores_other_lines():
    line = embedded_metrics_line(event(), "rs-dep", 1_700_000_000_000)
    logs = f"START RequestId: x\nplain text\n{{\"_aws\": \"not a directive\"}}\n{line}\nEND RequestId: x\n"
    [(namespace, points)] = embedded_metrics(logs)
    assert namespace == "RadStream"
    by_name = {p["MetricName"]: p for p in points}
    assert by_name["StudyFailed"]["Value"] == 0 and by_name["EndToEndLatency"]["Unit"] == "Milliseconds"
    assert all(p["Dimensions"] == [{"Name": "Deployment", "Value": "rs-dep"}] for p in points)


def test_a_throttled_request_counts_as_a_throttle_not_an_invocation():
    assert [p["MetricName"] for p in invocation_metrics("f", None, error=False, throttled=True)] == ["Throttles"]
    failed = {p["MetricName"]: p["Value"] for p in invocation_metrics("f", 12.0, error=True, throttled=False)}
    assert failed == {"Invocations": 1, "Errors": 1, "Duration": 12.0}
