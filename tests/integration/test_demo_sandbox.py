"""`radstream demo`, `radstream load`, `radstream watch` and `radstream teardown` through the real
CLI against one sandbox: from nothing, the demo's good studies get results from the (untrained)
model, its bad ones are quarantined with a reason, nothing is lost; the AWS CLI finds each
function's invocations logged in /aws/lambda/<function>, the dashboard, the alarms with their topic,
the budget and the two EKS add-ons, and the failure-rate alarm in ALARM after the bad studies; a
second demo changes nothing; a sustained load loses nothing, exports a row per study and scales
Triton out and, after the scale-down window, back in; `bench pipeline`, `bench cold-start` and each
`radstream ab` run at a tiny size and put everything back; teardown leaves nothing tagged, no log group and no alarm.
The numbers measured are printed, not asserted."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.aws_cli import aws_cli
from tests.support.radstream_cli import cli

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-demo"
FUNCTION_GROUPS = f"/aws/lambda/{DEPLOYMENT}-"
# The sandbox's model uses about 2 % of Triton's 500m request at 3 studies/s (the Lambdas, not
# Triton, bound the sandbox's throughput), so the HPA targets 1 % here to scale on that real signal;
# and a 15 s scale-down window keeps the test short.
CONFIG = f"""target: sandbox
deployment: {DEPLOYMENT}
triton:
  target_cpu_utilization: 1
  scale_down_window_seconds: 15
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from radstream.sandbox import daemon

    root = tmp_path_factory.mktemp("demo")
    (root / "radstream.yaml").write_text(CONFIG)
    try:
        info = daemon.start(root / ".radstream", timeout=120)
        if not info.get("registry"):
            pytest.skip("the sandbox has no registry: apt-get install -y docker-registry")
        yield root
    finally:
        daemon.stop(root / ".radstream")


def s3(project: Path) -> Any:
    import boto3

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    return boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def read_json(project: Path, bucket: str, key: str) -> dict[str, Any]:
    return json.loads(s3(project).get_object(Bucket=bucket, Key=key)["Body"].read())


def newest_key(project: Path, bucket: str, prefix: str) -> str:
    """The newest result or reason.json under a study's results/<id>/ or failed/<id>/ prefix."""
    listed = s3(project).list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    documents = [o for o in listed if o["Key"].endswith(".json")]
    if not documents:
        raise KeyError(prefix)
    return max(documents, key=lambda o: o["LastModified"])["Key"]


@pytest.fixture(scope="module")
def first_demo(project: Path) -> dict[str, Any]:
    result = cli(project, "demo", "--yes", "--json")
    assert result.code == 0, result.stderr[-3000:]
    payload = result.json
    assert payload["ok"] and [p["number"] for p in payload["phases"]] == [0, 1, 2, 3, 4, 5, 6]
    status = cli(project, "status", "--json").json
    return {"run": payload, "outputs": status["outputs"], "stderr": result.stderr}


def test_demo_from_nothing_gets_every_good_study_a_result_and_quarantines_the_bad(project, first_demo):
    from radstream.studies import REAL_STUDY_NAME, demo_studies

    outputs = first_demo["outputs"]
    results_bucket = outputs["buckets"]["results"]
    summary = outputs["demo"]
    assert first_demo["run"]["phases"][-1]["outputs"]["demo"] == summary  # --json carries it too
    expected = {s.name: s for s in demo_studies(include_real=False)}
    by_name = {s["name"]: s for s in summary["studies"]}
    assert set(by_name) == {*expected, REAL_STUDY_NAME}
    assert summary["lost"] == 0 and summary["unexpected"] == []
    for name, entry in by_name.items():
        study, study_id = expected.get(name), entry["study_id"]
        if study is None or study.good:
            document = read_json(project, results_bucket, newest_key(project, results_bucket, f"results/{study_id}/"))
            assert document["status"] == "SUCCESS" and document["model_trained"] is False
            assert document["top_finding"]["label"] == entry["top_finding"] and len(document["findings"]) == 14
        else:
            reason = read_json(project, results_bucket, newest_key(project, results_bucket, f"failed/{study_id}/"))
            assert (reason["stage"], reason["error_type"]) == study.expected_failure
            assert reason["message"] and reason["input_key"] == study.image_key
    assert summary["real_radiograph"]["name"] == REAL_STUDY_NAME and summary["real_radiograph"]["findings"]
    assert f"real radiograph {REAL_STUDY_NAME}:" in first_demo["stderr"]
    print(f"\ndemo: upload → result p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms; stages {summary['stages']}")
    print("demo latency per study (ms): " + ", ".join(f"{s['name']} {s['latency_ms']}" for s in summary["studies"]))


def function_log_groups(project: Path) -> list[str]:
    found = aws_cli(project, "logs", "describe-log-groups", "--log-group-name-prefix", FUNCTION_GROUPS)
    return sorted(g["logGroupName"] for g in found["logGroups"])


def test_the_aws_cli_finds_every_function_s_invocations_in_its_log_group(project, first_demo):
    from radstream.names import LAMBDA_FUNCTIONS

    groups = function_log_groups(project)
    assert len(groups) == len(LAMBDA_FUNCTIONS)
    for group in groups:  # good studies run five of them, the quarantined ones store-failure too
        events = aws_cli(project, "logs", "filter-log-events", "--log-group-name", group)["events"]
        starts = {e["message"].split()[2] for e in events if e["message"].startswith("START RequestId: ")}
        reports = {e["message"].split()[2] for e in events if e["message"].startswith("REPORT RequestId: ")}
        assert starts and starts == reports, group


def test_the_aws_cli_shows_the_dashboard_the_alarms_with_their_topic_the_budget_and_the_add_ons(project, first_demo):
    from radstream.aws.eks_addons import ADDONS

    dashboards = [d["DashboardName"] for d in aws_cli(project, "cloudwatch", "list-dashboards")["DashboardEntries"]]
    assert dashboards == [f"{DEPLOYMENT}-pipeline"]
    body = json.loads(aws_cli(project, "cloudwatch", "get-dashboard", "--dashboard-name", dashboards[0])["DashboardBody"])
    assert body["widgets"]
    alarms = aws_cli(project, "cloudwatch", "describe-alarms", "--alarm-name-prefix", f"{DEPLOYMENT}-")
    topic = next(t["TopicArn"] for t in aws_cli(project, "sns", "list-topics")["Topics"] if t["TopicArn"].endswith(f":{DEPLOYMENT}-alarms"))
    purposes = {a["AlarmName"].removeprefix(f"{DEPLOYMENT}-") for a in alarms["MetricAlarms"]}
    assert purposes == {"failure-rate", "p95-latency", "lambda-throttles", "telemetry-iterator-age", "firehose-delivery",
                        "uploads-without-executions"}
    assert all(a["AlarmActions"] == [topic] for a in alarms["MetricAlarms"])
    account = aws_cli(project, "sts", "get-caller-identity")["Account"]
    budgets = aws_cli(project, "budgets", "describe-budgets", "--account-id", account)["Budgets"]
    assert [b["BudgetName"] for b in budgets] == [f"{DEPLOYMENT}-monthly"]
    cluster = f"{DEPLOYMENT}-cluster"
    assert sorted(aws_cli(project, "eks", "list-addons", "--cluster-name", cluster)["addons"]) == sorted(ADDONS)
    for name in ADDONS:
        assert aws_cli(project, "eks", "describe-addon", "--cluster-name", cluster, "--addon-name", name)["addon"]["status"] == "ACTIVE"


def test_the_demo_s_bad_studies_drive_the_failure_rate_alarm_to_alarm(project, first_demo):
    """4 of the demo's 11 studies fail: far over the 1 % the alarm allows."""
    deadline = time.monotonic() + 120
    while True:
        [alarm] = aws_cli(project, "cloudwatch", "describe-alarms", "--alarm-names", f"{DEPLOYMENT}-failure-rate")["MetricAlarms"]
        if alarm["StateValue"] == "ALARM" or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert alarm["StateValue"] == "ALARM", alarm
    print(f"\nfailure-rate alarm: {alarm['StateReason']}")


def watch_once(project: Path) -> dict[str, Any]:
    result = cli(project, "watch", "--once", "--json")
    assert result.code == 0, result.stderr[-3000:]
    return result.json


def test_watch_once_gives_executions_failures_triton_scaling_and_lambda_errors(project, first_demo):
    from radstream.names import LAMBDA_FUNCTIONS
    from radstream.studies import demo_studies

    # A Triton pod the demo just started has no metrics until metrics-server has scraped it twice
    # (15 s apart) and the HPA has synced since (every 15 s): till then a real HPA reports
    # FailedGetResourceMetric, so this reads it as a user watching would, for up to a minute.
    deadline = time.monotonic() + 60
    while (view := watch_once(project))["scaling"]["metrics"] != "ValidMetricFound" and time.monotonic() < deadline:
        assert view["scaling"]["metrics"] == "FailedGetResourceMetric", view["scaling"]
        time.sleep(3)
    assert view["ok"] and view["errors"] == {}
    runs = view["executions"]
    assert runs["started"] >= len(demo_studies(include_real=False)) and runs["p50_ms"] <= runs["p95_ms"]
    expected = {s.expected_failure[1] for s in demo_studies(include_real=False) if not s.good}
    assert set(view["failures_by_reason"]) == expected
    assert view["triton"]["compute_ms"] > 0 and view["triton"]["source"].startswith("http://127.0.0.1:")
    assert view["scaling"]["min"] == 1 and view["scaling"]["target_cpu_utilization"] == 1
    assert view["scaling"]["metrics"] == "ValidMetricFound", view["scaling"]
    assert set(view["lambda_errors"]) == {f"{DEPLOYMENT}-{f.replace('_', '-')}" for f in LAMBDA_FUNCTIONS}
    print(f"\nwatch: {runs}; Triton {view['triton']}; failures {view['failures_by_reason']}")


def test_sustained_load_scales_triton_out_and_back_in_after_the_window(project, first_demo, tmp_path):
    result = cli(project, "load", "--rate", "3/s", "--duration", "45s", "--json", "--out", str(tmp_path))
    assert result.code == 0, result.stderr[-3000:]
    report = result.json
    assert (report["submitted"], report["succeeded"], report["lost"]) == (135, 135, 0)
    assert report["p50_ms"] <= report["p95_ms"] <= report["p99_ms"]
    assert Path(report["exports"]["csv"]).read_text().count("\n") == 136
    assert report["replicas_max"] == 2
    out = next(s for s in report["replicas"] if s["replicas"] == 2)
    assert out["at_s"] <= 120
    ended = time.monotonic()
    while (scale := watch_once(project)["scaling"])["replicas"] != 1 and time.monotonic() - ended < 300:
        time.sleep(3)
    assert scale["replicas"] == 1, scale
    print(f"\nload 3/s for 45 s: p50 {report['p50_ms']} p95 {report['p95_ms']} p99 {report['p99_ms']} ms")
    print(f"HPA: 1 -> 2 replicas {out['at_s']} s into the load (cpu {out['cpu_utilization']} % of the request, "
          f"target 1 %); back to 1 about {time.monotonic() - ended:.0f} s after it ended (window 15 s)")
    print("replicas over the run: " + ", ".join(f"{s['at_s']}s:{s['replicas']}" for s in report["replicas"]))
    # Meanwhile (a minute and more) the Container Insights agent reported Triton's pods from the same measurements.
    listed = aws_cli(project, "cloudwatch", "list-metrics", "--namespace", "ContainerInsights",
                     "--metric-name", "pod_cpu_utilization")["Metrics"]
    assert {"Name": "Namespace", "Value": "radstream"} in [d for m in listed for d in m["Dimensions"]]


def test_bench_pipeline_measures_both_ways_says_where_the_time_goes_and_prices_it(project, first_demo):
    from radstream.names import LAMBDA_FUNCTIONS

    result = cli(project, "bench", "pipeline", "--studies", "2", "--burst", "3", "--hold-seconds", "1", "--json")
    assert result.code == 0, result.stderr[-3000:]
    report = result.json
    direct, sandbox = report["per_study"]["direct"], report["per_study"]["sandbox"]
    assert (direct["succeeded"], sandbox["succeeded"], report["lost"]) == (2, 2, 0)
    assert report["per_study_ratio"] == round(sandbox["p50_ms"] / direct["p50_ms"], 3)
    hops = {row["hop"]: row for row in report["hops"]}
    assert {"upload to execution", "ValidateInput", "PrepareImage", "InvokeInference", "StoreResults",
            "SendTelemetry", "state transitions"} <= set(hops)
    assert all(row["sandbox_ms"] is not None and row["direct_ms"] is not None for row in hops.values())
    sizes = [b["size"] for b in report["bursts"]]
    assert sizes[0] == 3 and len(sizes) == 2  # the second: what the sandbox finished in --hold-seconds
    assert report["burst_throughput_ratio"] == min(b["ratio"] for b in report["bursts"])
    assert set(report["durations_ms"]) == {"ValidateInput", "PrepareImage", "InvokeInference", "StoreResults", "SendTelemetry"}
    assert len(report["durations_ms"]) == len(LAMBDA_FUNCTIONS) - 1  # StoreFailure never ran
    # Nothing the benchmark uploaded, and none of its outcomes, stays behind.
    buckets = {f"{DEPLOYMENT}-{kind}-123456789012": prefixes for kind, prefixes in
               (("images", ["incoming/"]), ("results", ["results/", "failed/"]))}
    for bucket, prefixes in buckets.items():
        for prefix in prefixes:
            left = s3(project).list_objects_v2(Bucket=bucket, Prefix=f"{prefix}LOAD-{report['run_id']}").get("KeyCount")
            assert left == 0, (bucket, prefix)
    cost = cli(project, "cost", "--json")
    assert cost.code == 0, cost.stderr[-3000:]
    priced = cost.json
    assert priced["duration_source"] == "bench pipeline"
    assert any("bench pipeline" in note for note in priced["per_1000_images"]["notes"])
    print(f"\nbench pipeline (tiny): per-study ratio {report['per_study_ratio']}, burst ratio "
          f"{report['burst_throughput_ratio']}, hops {[(h, r['overhead_ms']) for h, r in hops.items()]}")


def triton_model_config(project: Path) -> dict[str, Any]:
    import urllib.request

    url = json.loads((project / ".radstream" / "sandbox.json").read_text())["triton_http"]
    with urllib.request.urlopen(f"{url}/v2/models/radstream_cxr/config", timeout=10) as response:
        return json.loads(response.read())


def test_each_ab_test_runs_a_and_b_and_puts_the_deployment_back(project, first_demo, tmp_path):
    before = triton_model_config(project)
    batch = cli(project, "ab", "batch", "--burst", "2", "--max-batch-size", "1", "--json", "--out", str(tmp_path))
    assert batch.code == 0, batch.stderr[-3000:]
    report = batch.json
    assert report["applicable"] and report["variants"]["B"]["description"] == "max batch 1, dynamic batching off"
    figures = {row["figure"]: row for row in report["figures"]}
    assert figures["lost"]["a"] == figures["lost"]["b"] == 0
    assert figures["throughput_per_min"]["ratio"] == round(figures["throughput_per_min"]["b"] / figures["throughput_per_min"]["a"], 3)
    assert Path(report["exports"]["csv"]).read_text().count("\n") == len(report["figures"]) + 1
    assert triton_model_config(project) == before  # reloaded with A's configuration
    scaling = cli(project, "ab", "autoscaling", "--burst", "2", "--json")
    assert scaling.code == 0, scaling.stderr[-3000:]
    assert scaling.json["variants"]["B"]["description"] == "HPA held at 1 replica(s)"
    assert watch_once(project)["scaling"]["max"] == 2  # the HPA's bound is back
    memory = cli(project, "ab", "lambda-memory", "--json")
    assert memory.code == 0 and memory.json["applicable"] is False and "memory" in memory.json["reason"]
    print(f"\nab batch (tiny): {report['figures']}")


def test_bench_cold_start_imports_each_handler_with_its_layer_and_reads_its_cold_starts(project, first_demo):
    result = cli(project, "bench", "cold-start", "--repeat", "1", "--json")
    assert result.code == 0, result.stderr[-3000:]
    rows = {row["function"]: row for row in result.json["functions"]}
    assert all(row["import_ms"] > 0 for row in rows.values())
    # Only the sidecar's parser needs pydantic; nothing imports numpy, PIL or pydicom at import time.
    assert rows["validate_metadata"]["heavy_modules"] == ["pydantic"]
    assert all(row["heavy_modules"] == [] for name, row in rows.items() if name != "validate_metadata")
    assert rows["prepare_tensors"]["cold_starts"] >= 1 and rows["prepare_tensors"]["init_ms_p50"] > 0
    print("\ncold start: " + ", ".join(f"{n} import {r['import_ms']} ms init {r['init_ms_p50']} ms" for n, r in rows.items()))


def test_a_triton_certificate_from_another_ca_quarantines_the_study_as_unavailable(project, first_demo, tmp_path):
    import time

    import boto3

    from radstream.certificates import ensure
    from radstream.phases.p4_wiring import CA_VARIABLE, probe_png, probe_sidecar

    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    lam = boto3.client("lambda", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="testing",
                       aws_secret_access_key="testing")
    function = f"{DEPLOYMENT}-invoke-inference"
    wired = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert wired["INFERENCE_ENDPOINT"].startswith("https://") and "BEGIN CERTIFICATE" in wired[CA_VARIABLE]
    other = ensure(tmp_path / "other", "other-ca", "other", ips=("127.0.0.1",)).ca_cert.read_text()
    images, results = first_demo["outputs"]["buckets"]["images"], first_demo["outputs"]["buckets"]["results"]
    study = "wrong-ca-study"

    def set_ca(pem: str) -> None:
        lam.update_function_configuration(FunctionName=function, Environment={"Variables": {**wired, CA_VARIABLE: pem}})
        lam.get_waiter("function_updated_v2").wait(FunctionName=function)

    set_ca(other)
    try:
        s3(project).put_object(Bucket=images, Key=f"incoming/{study}.json", Body=probe_sidecar(study))
        s3(project).put_object(Bucket=images, Key=f"incoming/{study}.png", Body=probe_png())
        started, reason = time.monotonic(), None
        while reason is None and time.monotonic() - started < 300:
            try:
                reason = read_json(project, results, newest_key(project, results, f"failed/{study}/"))
            except Exception:
                time.sleep(1)
    finally:
        set_ca(wired[CA_VARIABLE])
    assert reason is not None, "the study never got a failure record"
    assert (reason["stage"], reason["error_type"]) == ("inference", "InferenceUnavailable")
    assert "CERTIFICATE_VERIFY_FAILED" in reason["message"] and reason["input_key"] == f"incoming/{study}.png"
    assert reason["copied"]  # nothing lost: the original is kept next to its reason
    s3(project).head_object(Bucket=results, Key=reason["copy_key"])
    print(f"\nwrong CA: quarantined after {time.monotonic() - started:.1f} s: {reason['message'][:160]}")


def test_a_second_demo_changes_nothing(project, first_demo):
    again = cli(project, "demo", "--yes", "--json")
    assert again.code == 0, again.stderr[-3000:]
    assert again.json["mutations"] == 0
    assert next(p for p in again.json["phases"] if p["number"] == 6)["status"] == "skipped"


def test_teardown_leaves_nothing_behind(project, first_demo):
    result = cli(project, "teardown", "--yes", "--json")
    assert result.code == 0, result.stderr[-3000:]
    assert result.json["ok"] and result.json["leftovers"] == []
    assert next(p for p in result.json["phases"] if p["number"] == 6)["status"] == "destroyed"
    assert function_log_groups(project) == []
    assert aws_cli(project, "cloudwatch", "describe-alarms", "--alarm-name-prefix", f"{DEPLOYMENT}-")["MetricAlarms"] == []
    assert aws_cli(project, "cloudwatch", "list-dashboards")["DashboardEntries"] == []
    assert not [t for t in aws_cli(project, "sns", "list-topics")["Topics"] if DEPLOYMENT in t["TopicArn"]]
    account = aws_cli(project, "sts", "get-caller-identity")["Account"]
    assert aws_cli(project, "budgets", "describe-budgets", "--account-id", account).get("Budgets", []) == []
    assert aws_cli(project, "eks", "list-clusters")["clusters"] == []  # its add-ons went first, then the cluster
