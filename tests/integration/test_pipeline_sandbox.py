"""The whole data path on a real sandbox daemon: the real phase 0 deploys the real handlers (zips +
layer built from PyPI wheels), uploads under incoming/ start executions through EventBridge, the
handlers run in the sandbox's Lambda runner and call the sandbox's real Triton, and telemetry flows
Kinesis -> Firehose -> raw_telemetry/. Every study must end in results/ or failed/; none is lost.

Prints the latencies it measures (per stage and upload -> result); it asserts none of them."""

from __future__ import annotations

import json
import shutil
import statistics
import time

import numpy as np
import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases.p0_foundation import FoundationPhase
from radstream.state import State
from tests.integration.sandbox_fixtures import wait_for
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    DEID_KEY,
    dataset,
    dicom_bytes,
    raster,
    sample_path,
    sidecar_fields,
    smooth_image,
)

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-pipe"
GOOD_PNGS = ("GOOD-1", "GOOD-2", "GOOD-3")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A sandbox daemon with phase 0 applied through the engine; yields the Context."""
    from radstream.sandbox import daemon

    project = tmp_path_factory.mktemp("pipeline")
    (project / "radstream.yaml").write_text(
        f"target: sandbox\ndeployment: {DEPLOYMENT}\npipeline:\n  firehose_buffer_seconds: 1\n"
    )
    loaded = config.load(project / "radstream.yaml", environ={})
    daemon.start(loaded.state_dir, timeout=120, region=loaded.settings.region)
    try:
        ctx = Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))
        ctx.cache_dir = tmp_path_factory.mktemp("cache")  # the layer is built once for this module
        result = Engine(ctx, [FoundationPhase()]).run([0])
        assert result.ok, result.error
        yield ctx
    finally:
        daemon.stop(loaded.state_dir)


def keys(ctx: Context, kind: str, prefix: str) -> set[str]:
    pages = ctx.client("s3").get_paginator("list_objects_v2").paginate(Bucket=ctx.names.bucket(kind), Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def read_json(ctx: Context, kind: str, key: str) -> dict:
    return json.loads(ctx.client("s3").get_object(Bucket=ctx.names.bucket(kind), Key=key)["Body"].read())


def executions(ctx: Context) -> list[dict]:
    sfn = ctx.client("stepfunctions")
    return sfn.list_executions(stateMachineArn=ctx.outputs(0)["state_machine_arn"])["executions"]


def telemetry_for(ctx: Context, studies: set[str]) -> dict[str, dict]:
    """The telemetry event of each study under raw_telemetry/, or {} while one is still missing."""
    events = {}
    for key in sorted(keys(ctx, "telemetry", "raw_telemetry/")):
        body = ctx.client("s3").get_object(Bucket=ctx.names.bucket("telemetry"), Key=key)["Body"].read()
        for line in body.decode().splitlines():
            event = json.loads(line)
            events[event["study_id"]] = event
    return events if studies <= set(events) else {}


def sidecar(study_id: str) -> bytes:
    return json.dumps(sidecar_fields(study_id)).encode()


def rgb_dicom() -> bytes:
    from radstream.pipeline.deid import deidentify

    ds = dataset(CR_FILES[2])
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.full((ds.Rows, ds.Columns, 3), 90, np.uint8).tobytes()
    return dicom_bytes(deidentify(ds, DEID_KEY))


def test_until_phase_4_wires_it_a_good_study_fails_as_not_wired(deployed):
    ctx = deployed
    s3, images = ctx.client("s3"), ctx.names.bucket("images")
    s3.put_object(Bucket=images, Key="incoming/UNWIRED-1.json", Body=sidecar("UNWIRED-1"))
    s3.put_object(Bucket=images, Key="incoming/UNWIRED-1.png", Body=raster(smooth_image(128, 128), "PNG"))
    wait_for(lambda: "failed/UNWIRED-1/reason.json" in keys(ctx, "results", "failed/UNWIRED-1/"), 120, what="reason.json")
    reason = read_json(ctx, "results", "failed/UNWIRED-1/reason.json")
    assert (reason["stage"], reason["error_type"]) == ("inference", "InferenceNotWired")
    assert "phase 4" in reason["message"]
    assert "tensors/UNWIRED-1.npy" in keys(ctx, "artifacts", "tensors/")  # validate and prepare did run


def test_every_study_ends_in_results_or_failed_and_telemetry_lands(deployed, tmp_path):
    from radstream.ingest import ingest_files

    ctx = deployed
    s3, lam, images = ctx.client("s3"), ctx.client("lambda"), ctx.names.bucket("images")
    # What phase 4 will do: point InvokeInference at the endpoint, keeping phase 0's variables.
    function = ctx.names.lambda_function("invoke_inference")
    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=function, Environment={
        "Variables": {**env, "INFERENCE_ENDPOINT": ctx.target.endpoints["triton_http"]}})
    before = {e["executionArn"] for e in executions(ctx)}

    # Good studies through `radstream ingest`'s code: PNGs with sidecars, and a DICOM it de-identifies.
    for i, study_id in enumerate(GOOD_PNGS):
        (tmp_path / f"scan{i}.png").write_bytes(raster(smooth_image(400 + 50 * i, 380, seed=i), "PNG"))
        (tmp_path / f"scan{i}.json").write_bytes(sidecar(study_id))
    shutil.copy(sample_path(CR_FILES[1]), tmp_path / "CR-2")
    started = time.monotonic()
    report = ingest_files(s3, images, [tmp_path], DEID_KEY)
    uploaded_at = {entry["study_id"]: started for entry in report["studies"]}
    assert report["ok"] and report["counts"]["uploaded"] == 4, report
    [dicom_id] = {entry["study_id"] for entry in report["studies"]} - set(GOOD_PNGS)  # from its pseudonymous UID
    good = {*GOOD_PNGS, dicom_id}

    # Bad studies, uploaded as a careless client would.
    bad_uploads = {
        "CORRUPT-1": [("incoming/CORRUPT-1.json", sidecar("CORRUPT-1")),
                      ("incoming/CORRUPT-1.png", raster(smooth_image(300, 300), "PNG")[:1500])],
        "TRAVERSAL-1": [("incoming/TRAVERSAL-1.json", sidecar("../TRAVERSAL-1")),
                        ("incoming/TRAVERSAL-1.png", raster(smooth_image(64, 64), "PNG"))],
        "RGB-1": [("incoming/RGB-1.dcm", rgb_dicom())],
    }
    for study_id, objects in bad_uploads.items():
        for key, body in objects:
            s3.put_object(Bucket=images, Key=key, Body=body)
        uploaded_at[study_id] = time.monotonic()

    finished_at: dict[str, float] = {}

    def all_landed() -> bool:
        landed = keys(ctx, "results", "results/") | keys(ctx, "results", "failed/")
        for study_id in good:
            if f"results/{study_id}.json" in landed:
                finished_at.setdefault(study_id, time.monotonic())
        for study_id in bad_uploads:
            if f"failed/{study_id}/reason.json" in landed:
                finished_at.setdefault(study_id, time.monotonic())
        return len(finished_at) == len(good) + len(bad_uploads)

    wait_for(all_landed, 300, what="every study in results/ or failed/", interval=0.05)

    # No study lost: one execution per image (sidecars start none), all ended as they should.
    runs = wait_for(lambda: (e := [x for x in executions(ctx) if x["executionArn"] not in before])
                    and all(x["status"] != "RUNNING" for x in e) and e, 60, what="executions to end")
    assert len(runs) == len(good) + len(bad_uploads)
    statuses = sorted(e["status"] for e in runs)
    assert statuses == ["FAILED"] * len(bad_uploads) + ["SUCCEEDED"] * len(good)

    stage_ms: dict[str, list[float]] = {}
    for study_id in good:
        result = read_json(ctx, "results", f"results/{study_id}.json")
        assert result["status"] == "SUCCESS" and result["model_name"] == "radstream_cxr"
        assert result["model_trained"] is False and result["model_version"] == "1"
        assert len(result["findings"]) == 14 and result["top_finding"] == result["findings"][0]
        assert [f["probability"] for f in result["findings"]] == sorted((f["probability"] for f in result["findings"]),
                                                                         reverse=True)
        for stage, ms in result["latency_ms"].items():
            stage_ms.setdefault(stage, []).append(ms)
    assert read_json(ctx, "results", f"results/{dicom_id}.json")["view"] == "AP"

    expected = {"CORRUPT-1": ("prepare", "CorruptImage"), "TRAVERSAL-1": ("validate", "InvalidMetadata"),
                "RGB-1": ("prepare", "UnsupportedImage")}
    for study_id, (stage, error_type) in expected.items():
        reason = read_json(ctx, "results", f"failed/{study_id}/reason.json")
        assert (reason["stage"], reason["error_type"]) == (stage, error_type), reason
        original = bad_uploads[study_id][-1]
        copy_key = f"failed/{study_id}/{original[0].rsplit('/', 1)[-1]}"
        assert ctx.client("s3").get_object(Bucket=ctx.names.bucket("results"), Key=copy_key)["Body"].read() == original[1]

    # Telemetry: one event per study, SUCCESS or FAILED, through Kinesis and Firehose.
    every = good | set(bad_uploads)

    events = wait_for(lambda: telemetry_for(ctx, every), 120, what="telemetry for every study in raw_telemetry/", interval=0.5)
    assert {events[s]["status"] for s in good} == {"SUCCESS"}
    assert {events[s]["status"] for s in bad_uploads} == {"FAILED"}
    assert events["CORRUPT-1"]["error_type"] == "CorruptImage"
    store_ms = [events[s]["store_ms"] for s in good]

    end_to_end = [(finished_at[s] - uploaded_at[s]) * 1000 for s in good]
    report_latency("a burst of 4 good + 3 bad studies, cold workers", stage_ms, store_ms, end_to_end)
    print(f"  bad inputs tried here: {len(bad_uploads)} (+1 unwired study)")


def test_warm_sequential_latency(deployed):
    """One study at a time on warm workers: the steady-state numbers (printed, not asserted)."""
    ctx = deployed
    s3, images = ctx.client("s3"), ctx.names.bucket("images")
    stage_ms: dict[str, list[float]] = {}
    end_to_end = []
    for i in range(5):
        study_id = f"WARM-{i}"
        s3.put_object(Bucket=images, Key=f"incoming/{study_id}.json", Body=sidecar(study_id))
        started = time.monotonic()
        s3.put_object(Bucket=images, Key=f"incoming/{study_id}.png", Body=raster(smooth_image(1024, 1024, seed=i), "PNG"))
        wait_for(lambda s=study_id: f"results/{s}.json" in keys(ctx, "results", f"results/{s}"), 120,
                 what=f"results/{study_id}.json", interval=0.02)
        end_to_end.append((time.monotonic() - started) * 1000)
        for stage, ms in read_json(ctx, "results", f"results/{study_id}.json")["latency_ms"].items():
            stage_ms.setdefault(stage, []).append(ms)
    warm = {f"WARM-{i}" for i in range(5)}
    events = wait_for(lambda: telemetry_for(ctx, warm), 120, what="telemetry for the warm studies", interval=0.5)
    store_ms = [events[s]["store_ms"] for s in warm]
    report_latency("5 studies one after another (1024x1024 PNG), warm workers", stage_ms, store_ms, end_to_end)


def test_an_execution_that_times_out_is_recorded_as_timed_out(deployed):
    """The state machine's own timeout ends the execution outside every Catch: the execution-failed
    rule has StoreFailure record it. A sidecar that never comes is waited for ~30 s; 3 s end it first."""
    ctx = deployed
    sfn, s3, images = ctx.client("stepfunctions"), ctx.client("s3"), ctx.names.bucket("images")
    machine = ctx.outputs(0)["state_machine_arn"]
    definition = sfn.describe_state_machine(stateMachineArn=machine)["definition"]
    sfn.update_state_machine(stateMachineArn=machine, definition=json.dumps({**json.loads(definition), "TimeoutSeconds": 3}))
    try:
        s3.put_object(Bucket=images, Key="incoming/NO-SIDECAR-1.png", Body=raster(smooth_image(64, 64), "PNG"))
        wait_for(lambda: "failed/NO-SIDECAR-1/reason.json" in keys(ctx, "results", "failed/NO-SIDECAR-1/"), 90,
                 what="the timed-out study's reason.json")
    finally:
        sfn.update_state_machine(stateMachineArn=machine, definition=definition)
    reason = read_json(ctx, "results", "failed/NO-SIDECAR-1/reason.json")
    assert (reason["stage"], reason["error_type"], reason["copied"]) == ("execution", "TIMED_OUT", False), reason
    assert sfn.describe_execution(executionArn=reason["execution_arn"])["status"] == "TIMED_OUT"


def test_an_upload_eventbridge_cannot_deliver_is_recorded_from_the_dead_letter_queue(deployed):
    """StartExecution refused (here: the target's state machine is gone): the rule's dead-letter
    queue gets the upload, and its mapping hands it to StoreFailure."""
    from radstream.documents import event_rules

    ctx = deployed
    events, s3, images = ctx.client("events"), ctx.client("s3"), ctx.names.bucket("images")
    [rule] = [r for r in event_rules(ctx.names) if r.purpose == "image-uploaded"]
    [target] = rule.targets
    before = {e["executionArn"] for e in executions(ctx)}
    events.put_targets(Rule=rule.name, Targets=[{**target, "Arn": f"{target['Arn']}-gone"}])
    try:
        s3.put_object(Bucket=images, Key="incoming/UNDELIVERED-1.json", Body=sidecar("UNDELIVERED-1"))
        s3.put_object(Bucket=images, Key="incoming/UNDELIVERED-1.png", Body=raster(smooth_image(64, 64), "PNG"))
        wait_for(lambda: "failed/UNDELIVERED-1/reason.json" in keys(ctx, "results", "failed/UNDELIVERED-1/"), 60,
                 what="the undelivered study's reason.json")
    finally:
        events.put_targets(Rule=rule.name, Targets=rule.targets)
    reason = read_json(ctx, "results", "failed/UNDELIVERED-1/reason.json")
    assert (reason["stage"], reason["error_type"], reason["copied"]) == ("delivery", "NO_RESOURCE", False), reason
    assert f"{target['Arn']}-gone" in reason["message"]
    assert {e["executionArn"] for e in executions(ctx)} == before  # no execution ever started for it


def report_latency(title: str, stage_ms: dict[str, list[float]], store_ms: list[float], end_to_end: list[float]) -> None:
    print(f"\npipeline on the sandbox, {title} (ms):")
    for stage in ("validate", "prepare", "inference"):
        print(f"  {stage:<15} p50 {statistics.median(stage_ms[stage]):8.1f}  max {max(stage_ms[stage]):8.1f}")
    print(f"  {'store':<15} p50 {statistics.median(store_ms):8.1f}  max {max(store_ms):8.1f}")
    print(f"  {'upload->result':<15} p50 {statistics.median(end_to_end):8.1f}  max {max(end_to_end):8.1f}")
