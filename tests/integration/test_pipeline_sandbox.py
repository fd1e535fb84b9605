"""The whole data path on a real sandbox daemon: the real phase 0 deploys the real handlers (zips +
layer built from PyPI wheels), uploads under incoming/ start executions through EventBridge, the
handlers run in the sandbox's Lambda runner and call the sandbox's real Triton, and telemetry flows
Kinesis -> Firehose -> raw_telemetry/. Every study must end in results/ or failed/; none is lost.

Outcomes are filed per study id and input object (results/<id>/<ref>.json, failed/<id>/<ref>/), so
the tests find a study's by listing its id's prefix. The routing test uploads with the AWS CLI, as
a hospital's scripts would, every kind of name and content the rule and ValidateInput must handle.

Prints the latencies it measures (per stage and upload -> result); it asserts none of them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import statistics
import time

import numpy as np
import pytest

from radstream import config
from radstream.aws.runs import landed
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases.p0_foundation import FoundationPhase
from radstream.pipeline.deid import UNREADABLE_HEADER, dicom_study_id
from radstream.pipeline.study_ids import key_study_id
from radstream.state import State
from tests.integration.sandbox_fixtures import wait_for
from tests.support.aws_cli import aws_cli
from tests.support.radstream_cli import cli
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    DEID_KEY,
    dataset,
    dicom_bytes,
    dicom_with_unreadable_element,
    raster,
    sample_bytes,
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


def outcome(ctx: Context, study_id: str) -> tuple[str, dict] | None:
    """(kind, document) of the study's newest result or failure, or None while there is none."""
    found = landed(ctx.client("s3"), ctx.names.bucket("results"), [f"{study_id}/"]).get(study_id)
    return (found.kind, read_json(ctx, "results", found.key)) if found else None


def outcomes_under(ctx: Context, study_id: str) -> list[dict]:
    """Every result and failure document filed under the study id (one per input object version)."""
    docs = [k for k in keys(ctx, "results", f"results/{study_id}/") | keys(ctx, "results", f"failed/{study_id}/")
            if k.endswith(".json")]
    return [read_json(ctx, "results", k) for k in sorted(docs)]


def study_uid_id(data: bytes) -> str:
    import pydicom

    return dicom_study_id(str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID))


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
    # The CR samples are images of one study; this one must not share the good DICOM's study id.
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.1"
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
    kind, reason = wait_for(lambda: outcome(ctx, "UNWIRED-1"), 120, what="reason.json")
    assert kind == "failure" and (reason["stage"], reason["error_type"]) == ("inference", "InferenceNotWired")
    assert "phase 4" in reason["message"]
    assert reason["input_version_id"]  # the sandbox's S3 events name the version, as AWS's do
    assert f"tensors/UNWIRED-1/{reason['input_ref']}.npy" in keys(ctx, "artifacts", "tensors/")  # validate and prepare ran


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
    report = ingest_files(s3, images, [tmp_path], lambda: DEID_KEY)
    uploaded_at = {entry["study_id"]: started for entry in report["studies"]}
    assert report["ok"] and report["counts"]["uploaded"] == 4, report
    [dicom_id] = {entry["study_id"] for entry in report["studies"]} - set(GOOD_PNGS)  # from its pseudonymous UID
    good = {*GOOD_PNGS, dicom_id}

    # Bad studies, uploaded as a careless client would.
    rgb = rgb_dicom()
    bad_uploads = {
        "CORRUPT-1": [("incoming/CORRUPT-1.json", sidecar("CORRUPT-1")),
                      ("incoming/CORRUPT-1.png", raster(smooth_image(300, 300), "PNG")[:1500])],
        # No valid id of its own: filed under a hash of its key.
        key_study_id("incoming/TRAVERSAL-1.png"): [("incoming/TRAVERSAL-1.json", sidecar("../TRAVERSAL-1")),
                                                   ("incoming/TRAVERSAL-1.png", raster(smooth_image(64, 64), "PNG"))],
        study_uid_id(rgb): [("incoming/RGB-1.dcm", rgb)],
    }
    for study_id, objects in bad_uploads.items():
        for key, body in objects:
            s3.put_object(Bucket=images, Key=key, Body=body)
        uploaded_at[study_id] = time.monotonic()

    finished_at: dict[str, float] = {}

    def all_landed() -> bool:
        found = landed(ctx.client("s3"), ctx.names.bucket("results"), [f"{s}/" for s in good | set(bad_uploads)])
        for study_id, newest in found.items():
            if newest.kind == ("result" if study_id in good else "failure"):
                finished_at.setdefault(study_id, time.monotonic())
        return len(finished_at) == len(good) + len(bad_uploads)

    assert not good & set(bad_uploads)  # each study its own id, so each has one newest outcome
    wait_for(all_landed, 300, what="every study in results/ or failed/", interval=0.05)

    # No study lost: one execution per image (sidecars start none), all ended as they should.
    runs = wait_for(lambda: (e := [x for x in executions(ctx) if x["executionArn"] not in before])
                    and all(x["status"] != "RUNNING" for x in e) and e, 60, what="executions to end")
    assert len(runs) == len(good) + len(bad_uploads)
    statuses = sorted(e["status"] for e in runs)
    assert statuses == ["FAILED"] * len(bad_uploads) + ["SUCCEEDED"] * len(good)

    stage_ms: dict[str, list[float]] = {}
    for study_id in good:
        kind, result = outcome(ctx, study_id)
        assert result["status"] == "SUCCESS" and result["model_name"] == "radstream_cxr"
        assert result["model_trained"] is False and result["model_version"] == "1"
        assert len(result["findings"]) == 14 and result["top_finding"] == result["findings"][0]
        assert [f["probability"] for f in result["findings"]] == sorted((f["probability"] for f in result["findings"]),
                                                                         reverse=True)
        for stage, ms in result["latency_ms"].items():
            stage_ms.setdefault(stage, []).append(ms)
    assert outcome(ctx, dicom_id)[1]["view"] == "AP"

    expected = dict(zip(bad_uploads, [("prepare", "CorruptImage"), ("validate", "InvalidMetadata"),
                                      ("prepare", "UnsupportedImage")], strict=True))
    for study_id, (stage, error_type) in expected.items():
        kind, reason = outcome(ctx, study_id)
        assert (kind, reason["stage"], reason["error_type"]) == ("failure", stage, error_type), reason
        original = bad_uploads[study_id][-1]
        assert reason["input_key"] == original[0] and reason["copy_key"].endswith("/original")
        assert ctx.client("s3").get_object(Bucket=ctx.names.bucket("results"), Key=reason["copy_key"])["Body"].read() == original[1]

    # Telemetry: one event per study, SUCCESS or FAILED, through Kinesis and Firehose.
    every = good | set(bad_uploads)

    events = wait_for(lambda: telemetry_for(ctx, every), 120, what="telemetry for every study in raw_telemetry/", interval=0.5)
    assert {events[s]["status"] for s in good} == {"SUCCESS"}
    assert {events[s]["status"] for s in bad_uploads} == {"FAILED"}
    assert events["CORRUPT-1"]["error_type"] == "CorruptImage"
    assert all("input_key" not in e and "incoming/" not in json.dumps(e) for e in events.values())
    store_ms = [events[s]["store_ms"] for s in good]

    end_to_end = [(finished_at[s] - uploaded_at[s]) * 1000 for s in good]
    report_latency("a burst of 4 good + 3 bad studies, cold workers", stage_ms, store_ms, end_to_end)
    print(f"  bad inputs tried here: {len(bad_uploads)} (+1 unwired study)")


def test_every_upload_is_routed_by_content_and_filed_under_the_study_s_own_id(deployed, tmp_path):
    """Uploads with the AWS CLI, named as exports name them. Runs after the test above wired
    inference, so good studies end in real results. None may be lost, none filed under its key's
    text, no identified original copied, and an overwrite between stages never mixes versions."""
    ctx = deployed
    images = ctx.names.bucket("images")
    uploaded: list[str] = []

    def put(key: str, body: bytes) -> str:
        uploaded.append(key)
        path = tmp_path / hashlib.sha256(key.encode()).hexdigest()
        path.write_bytes(body)
        return aws_cli(ctx.state_dir.parent, "s3api", "put-object", "--bucket", images, "--key", key,
                       "--body", str(path))["VersionId"]

    from radstream.pipeline.deid import deidentify

    ds = dataset(CR_FILES[0])
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.2.1125.2"  # a study of its own (the CR samples share one)
    dicom = dicom_bytes(deidentify(ds, DEID_KEY))
    identified = sample_bytes(CR_FILES[2])
    jpeg, png = raster(smooth_image(300, 280, seed=7), "JPEG"), raster(smooth_image(256, 256, seed=8), "PNG")
    # study id → (expected kind, stage, error type, a word the reason must hold)
    expected: dict[str, tuple[str, str | None, str | None, str | None]] = {}

    put("incoming/1.2.826.0.1.3680043.2.1125.7", dicom)  # a PACS export: no extension
    expected[study_uid_id(dicom)] = ("result", None, None, None)
    put("incoming/SMITH_JOHN_MRN0042", identified)  # identified, no extension: refused, never copied
    expected[key_study_id("incoming/SMITH_JOHN_MRN0042")] = ("failure", "validate", "IdentifiedDicom", "identity")
    put("incoming/Mixed-1.json", sidecar("ROUTE-MIXED"))
    put("incoming/Mixed-1.Png", png)
    expected["ROUTE-MIXED"] = ("result", None, None, None)
    put("incoming/X-1.tif", b"II*\x00" + bytes(1024))
    expected[key_study_id("incoming/X-1.tif")] = ("failure", "validate", "UnsupportedFormat", "TIFF")
    put("incoming/X-2.dcm.gz", gzip.compress(dicom, mtime=0))
    expected[key_study_id("incoming/X-2.dcm.gz")] = ("failure", "validate", "UnsupportedFormat", "gzip")
    put("incoming/DOE_JANE_1985.json", sidecar("ROUTE-JPEG"))  # the key is not the id: the sidecar says
    put("incoming/DOE_JANE_1985.jpg", jpeg)
    expected["ROUTE-JPEG"] = ("result", None, None, None)
    for twin in ("TWIN-A", "TWIN-B"):  # two different objects claiming one id
        put(f"incoming/{twin}.json", sidecar("ROUTE-TWIN"))
        put(f"incoming/{twin}.png", raster(smooth_image(200, 200, seed=len(twin) + ord(twin[-1])), "PNG"))
    put("incoming/REUP-1.json", sidecar("ROUTE-REUP"))
    first_version = put("incoming/REUP-1.png", png)
    second_version = put("incoming/REUP-1.png", jpeg)  # overwritten at once, while the first is in flight
    # A header the identity check cannot read: identified until shown otherwise, and the value it
    # choked on ("Doe") never quoted.
    put("incoming/BROWN_ANN_MRN7", dicom_with_unreadable_element(identified))
    expected[key_study_id("incoming/BROWN_ANN_MRN7")] = ("failure", "validate", "IdentifiedDicom", UNREADABLE_HEADER)
    expected[ingested_with_the_deployment_s_key(ctx, tmp_path, identified)] = ("result", None, None, None)

    def settled() -> bool:
        return (all(outcome(ctx, s) for s in expected) and len(outcomes_under(ctx, "ROUTE-TWIN")) == 2
                and len(outcomes_under(ctx, "ROUTE-REUP")) == 2)

    wait_for(settled, 300, what="an outcome for every routed upload", interval=0.5)

    leaks: list[str] = []
    for study_id, (kind, stage, error_type, word) in expected.items():
        found_kind, document = outcome(ctx, study_id)
        assert found_kind == kind, (study_id, document.get("message"))
        if kind == "failure":
            assert (document["stage"], document["error_type"]) == (stage, error_type), document
            assert word in document["message"], document
    for refused_key in ("incoming/SMITH_JOHN_MRN0042", "incoming/BROWN_ANN_MRN7"):
        refused = outcome(ctx, key_study_id(refused_key))[1]
        assert refused["copied"] is False and "Doe" not in refused["message"], refused
    twins = outcomes_under(ctx, "ROUTE-TWIN")
    assert {d["input_key"] for d in twins} == {"incoming/TWIN-A.png", "incoming/TWIN-B.png"}
    assert {d["status"] for d in twins} == {"SUCCESS"} and any(d["id_collision"] for d in twins)
    reuploads = outcomes_under(ctx, "ROUTE-REUP")
    assert {d["input_version_id"] for d in reuploads} == {first_version, second_version}
    s3 = ctx.client("s3")
    for document in reuploads:  # each execution scored the version it was started for, or failed cleanly
        if document["status"] == "SUCCESS":
            body = s3.get_object(Bucket=images, Key="incoming/REUP-1.png", VersionId=document["input_version_id"])["Body"].read()
            assert document["input_sha256"] == hashlib.sha256(body).hexdigest()
            assert not document["id_collision"]  # a re-upload of one key is no collision

    # No key text in any other bucket's object names or telemetry, no identified original anywhere.
    names = ("SMITH_JOHN", "DOE_JANE", "BROWN_ANN", "WHITE_ROSE", "1.2.826.0.1.3680043.2.1125.7", "Mixed-1", "REUP-1")
    for kind in ("results", "artifacts", "telemetry"):
        leaks += [k for k in keys(ctx, kind, "") if any(n in k for n in names)]
    for key in keys(ctx, "results", "failed/"):
        if key.endswith("/original") and s3.get_object(Bucket=ctx.names.bucket("results"), Key=key)["Body"].read() == identified:
            leaks.append(key)

    def telemetry_lines() -> list[str]:
        return [line for k in keys(ctx, "telemetry", "raw_telemetry/") for line in
                s3.get_object(Bucket=ctx.names.bucket("telemetry"), Key=k)["Body"].read().decode().splitlines()]

    wait_for(lambda: all(any(f'"study_id":"{sid}"' in line for line in telemetry_lines()) for sid in expected), 120,
             what="telemetry of the routed studies", interval=0.5)
    leaks += [line[:80] for line in telemetry_lines() if "incoming/" in line or any(n in line for n in names)]
    assert leaks == []
    sidecars = sum(k.endswith(".json") for k in uploaded)
    print(f"\nrouting on the sandbox: {len(uploaded) - sidecars} uploads (+{sidecars} sidecars), "
          f"{sum(e[0] == 'result' for e in expected.values()) + 2 + 2} results expected, "
          f"{sum(e[0] == 'failure' for e in expected.values())} quarantined, 0 lost, {len(leaks)} leaks")


def ingested_with_the_deployment_s_key(ctx: Context, tmp_path, identified: bytes) -> str:
    """`radstream ingest` and `radstream deid` with no --key-file use the key phase 0 keeps in the
    emulated account's Secrets Manager; --already-deidentified does not let an identified file
    through. Returns the id of the study ingest uploaded."""
    import pydicom

    from radstream.aws.secrets import read_key
    from radstream.pipeline.deid import pseudonym_uid

    project, source = ctx.state_dir.parent, tmp_path / "export" / "WHITE_ROSE_MRN9"
    source.parent.mkdir()
    source.write_bytes(identified)
    original_uid = str(pydicom.dcmread(source, stop_before_pixels=True).StudyInstanceUID)
    key = read_key(ctx.client("secretsmanager"), ctx.names.deid_key_secret)

    before = keys(ctx, "images", "")
    refused = cli(project, "ingest", "--already-deidentified", "--json", str(source), timeout=120)
    assert refused.code == 1, refused.stderr
    assert json.loads(refused.stdout)["studies"][0]["status"] == "refused"
    assert keys(ctx, "images", "") == before  # nothing of it uploaded

    copies = cli(project, "deid", "--json", "--out", str(tmp_path / "copies"), str(source), timeout=120)
    assert copies.code == 0, copies.stderr
    copy = pydicom.dcmread(json.loads(copies.stdout)["files"][0]["output"], stop_before_pixels=True)
    assert copy.StudyInstanceUID == pseudonym_uid(original_uid, key)

    uploaded = cli(project, "ingest", "--json", str(source), timeout=120)
    assert uploaded.code == 0, uploaded.stderr
    [entry] = json.loads(uploaded.stdout)["studies"]
    assert entry["study_id"] == dicom_study_id(pseudonym_uid(original_uid, key)) != dicom_study_id(original_uid)
    assert "WHITE_ROSE" not in " ".join(entry["keys"])
    return entry["study_id"]


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
        _, result = wait_for(lambda s=study_id: outcome(ctx, s), 120, what=f"results/{study_id}/", interval=0.02)
        end_to_end.append((time.monotonic() - started) * 1000)
        for stage, ms in result["latency_ms"].items():
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
        # Its content was never read: its id is a hash of its key.
        prefix = f"failed/{key_study_id('incoming/NO-SIDECAR-1.png')}/"
        reason_key = wait_for(lambda: next((k for k in keys(ctx, "results", prefix) if k.endswith("/reason.json")), None),
                              90, what="the timed-out study's reason.json")
    finally:
        sfn.update_state_machine(stateMachineArn=machine, definition=definition)
    reason = read_json(ctx, "results", reason_key)
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
        prefix = f"failed/{key_study_id('incoming/UNDELIVERED-1.png')}/"
        reason_key = wait_for(lambda: next((k for k in keys(ctx, "results", prefix) if k.endswith("/reason.json")), None),
                              60, what="the undelivered study's reason.json")
    finally:
        events.put_targets(Rule=rule.name, Targets=rule.targets)
    reason = read_json(ctx, "results", reason_key)
    assert (reason["stage"], reason["error_type"], reason["copied"]) == ("delivery", "NO_RESOURCE", False), reason
    assert f"{target['Arn']}-gone" in reason["message"]
    assert {e["executionArn"] for e in executions(ctx)} == before  # no execution ever started for it


def report_latency(title: str, stage_ms: dict[str, list[float]], store_ms: list[float], end_to_end: list[float]) -> None:
    print(f"\npipeline on the sandbox, {title} (ms):")
    for stage in ("validate", "prepare", "inference"):
        print(f"  {stage:<15} p50 {statistics.median(stage_ms[stage]):8.1f}  max {max(stage_ms[stage]):8.1f}")
    print(f"  {'store':<15} p50 {statistics.median(store_ms):8.1f}  max {max(store_ms):8.1f}")
    print(f"  {'upload->result':<15} p50 {statistics.median(end_to_end):8.1f}  max {max(end_to_end):8.1f}")
