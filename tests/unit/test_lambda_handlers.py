"""The six Lambda handlers called directly, against in-process moto S3 and Kinesis, with real study
bytes: each step's contract, the typed errors bad inputs raise, and what success and failure leave
behind in the buckets and on the telemetry stream."""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import io
import json
import socket
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pydicom
import pytest
from moto import mock_aws

from radstream.aws.packaging import LAYER_REQUIREMENTS
from radstream.config import PipelineSettings
from radstream.names import INCOMING_PREFIX, LAMBDA_FUNCTIONS
from radstream.pipeline import INCOMING_PREFIX as PIPELINE_INCOMING_PREFIX
from radstream.pipeline import errors, lambda_support
from radstream.pipeline.deid import dicom_study_id
from radstream.pipeline.preprocess import decode_tensor
from radstream.pipeline.results import TELEMETRY_COLUMNS, input_ref
from radstream.pipeline.study_ids import key_sha256, key_study_id
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    DEID_KEY,
    dataset,
    dicom_bytes,
    dicom_with_unreadable_element,
    png_with_header,
    raster,
    sample_bytes,
    smooth_image,
)

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
IMAGES, RESULTS, ARTIFACTS, STREAM = "t-images", "t-results", "t-artifacts", "t-telemetry"
SIDECAR = {"study_id": "S-001", "view": "PA", "timestamp": "2024-01-15T10:00:00Z", "sex": "F", "burned_in_annotation": False}
INFERENCE = {"model_name": "radstream_cxr", "model_version": "1", "model_trained": False, "model_trained_on": None,
             "model_licence": "Apache-2.0", "model_sha256": "ab" * 32,
             "probabilities": {"Effusion": 0.2, "Atelectasis": 0.9, "Mass": 0.2}}


def load_handler(function: str) -> ModuleType:
    path = ROOT / "lambdas" / function / "handler.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{function}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HANDLERS = {fn: load_handler(fn) for fn in LAMBDA_FUNCTIONS}


def run(function: str, event: dict) -> dict:
    result = HANDLERS[function].handler(event, None)
    json.dumps(result)  # Lambda must be able to marshal it
    return result


@pytest.fixture
def aws(monkeypatch):
    for name, value in {"AWS_DEFAULT_REGION": REGION, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "IMAGES_BUCKET": IMAGES, "RESULTS_BUCKET": RESULTS, "ARTIFACTS_BUCKET": ARTIFACTS,
                        "TELEMETRY_STREAM": STREAM, "MODEL_NAME": "radstream_cxr", "INFERENCE_ENDPOINT": "", "DEPLOYMENT": "rs-test",
                        "MAX_IMAGE_BYTES": str(PipelineSettings().max_image_bytes),
                        "MAX_PIXELS": str(PipelineSettings().max_pixels)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setattr(lambda_support, "_clients", {})
    with mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (IMAGES, RESULTS, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=IMAGES, VersioningConfiguration={"Status": "Enabled"})  # as phase 0 makes it
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName=STREAM, ShardCount=1)
        yield s3, kinesis


def upload(s3, key: str, body: bytes) -> dict:
    """Put an object under incoming/ and return the EventBridge event its upload produces."""
    version = s3.put_object(Bucket=IMAGES, Key=key, Body=body)["VersionId"]
    return {"detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": IMAGES}, "object": {"key": key, "size": len(body), "version-id": version}}}


def ref_of(event: dict) -> str:
    """The input ref the pipeline files the uploaded object's outcomes under."""
    return input_ref(event["detail"]["object"]["key"], event["detail"]["object"]["version-id"])


def results_keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=RESULTS).get("Contents", [])}


def telemetry_records(kinesis) -> list[tuple[str, dict]]:
    shard = kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=STREAM, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    for record in records:
        assert record["Data"].endswith(b"\n") and record["Data"].count(b"\n") == 1  # one JSON line each
    return [(r["PartitionKey"], json.loads(r["Data"])) for r in records]


def read_json(s3, bucket: str, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def png_study(s3, study_id: str = "S-001", **sidecar) -> dict:
    s3.put_object(Bucket=IMAGES, Key=f"incoming/{study_id}.json", Body=json.dumps({**SIDECAR, "study_id": study_id, **sidecar}))
    return upload(s3, f"incoming/{study_id}.png", raster(smooth_image(300, 260), "PNG"))


def deidentified_cr(index: int = 0) -> bytes:
    from radstream.pipeline.deid import deidentify_bytes

    return deidentify_bytes(sample_bytes(CR_FILES[index]), DEID_KEY)


def rgb_dicom() -> bytes:
    from radstream.pipeline.deid import deidentify

    ds = dataset(CR_FILES[0])
    ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.PlanarConfiguration = "RGB", 3, 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelData = np.zeros((ds.Rows, ds.Columns, 3), np.uint8).tobytes()
    return dicom_bytes(deidentify(ds, DEID_KEY))


# --- the good path -------------------------------------------------------------------------------


def test_png_with_sidecar_goes_through_every_step(aws):
    s3, kinesis = aws
    event = png_study(s3)

    validated = run("validate_metadata", event)
    assert validated["study_id"] == "S-001" and validated["format"] == "png"
    assert validated["s3_path"] == f"s3://{IMAGES}/incoming/S-001.png"
    assert validated["metadata"] == SIDECAR

    assert validated["version_id"] == event["detail"]["object"]["version-id"] and validated["input_ref"] == ref_of(event)

    prepared = run("prepare_tensors", validated)
    tensor_key = f"tensors/S-001/{ref_of(event)}.npy"
    assert prepared["tensor"]["s3_path"] == f"s3://{ARTIFACTS}/{tensor_key}"
    tensor = decode_tensor(s3.get_object(Bucket=ARTIFACTS, Key=tensor_key)["Body"].read())
    assert tensor.shape == (1, 224, 224) and tensor.std() > 0
    assert set(prepared["processing_time_ms"]) == {"validate", "prepare"}

    stored = run("store_results", {**prepared, "inference_results": INFERENCE,
                                   "processing_time_ms": {**prepared["processing_time_ms"], "inference": 12.5}})
    result = read_json(s3, RESULTS, f"results/S-001/{ref_of(event)}.json")
    assert stored["results_s3_path"] == f"s3://{RESULTS}/results/S-001/{ref_of(event)}.json"
    assert result["study_id"] == "S-001" and result["status"] == "SUCCESS"
    assert (result["model_name"], result["model_version"], result["model_trained"]) == ("radstream_cxr", "1", False)
    assert [f["label"] for f in result["findings"]] == ["Atelectasis", "Effusion", "Mass"]
    assert result["top_finding"] == {"label": "Atelectasis", "probability": 0.9}
    assert set(result["latency_ms"]) == {"validate", "prepare", "inference", "total"}
    assert result["latency_ms"]["inference"] == 12.5
    assert result["input_sha256"] == prepared["input_sha256"] and len(result["input_sha256"]) == 64
    assert result["input_key"] == "incoming/S-001.png" and result["view"] == "PA"
    assert result["input_version_id"] == event["detail"]["object"]["version-id"] and result["id_collision"] is False

    done = run("send_telemetry", stored)
    assert done["status"] == "SUCCESS"
    [(partition, record)] = telemetry_records(kinesis)
    assert partition == "S-001"
    assert list(record) == [name for name, _ in TELEMETRY_COLUMNS]
    assert record["input_key_sha256"] == key_sha256("incoming/S-001.png") and "incoming/" not in json.dumps(record)
    assert (record["status"], record["top_finding"], record["model_name"]) == ("SUCCESS", "Atelectasis", "radstream_cxr")
    assert record["store_ms"] is not None and record["error_type"] is None
    assert (record["model_trained"], record["model_trained_on"], record["model_licence"], record["model_sha256"]) == (
        False, None, "Apache-2.0", "ab" * 32)


def test_a_trained_model_is_reported_trained_in_the_result_and_the_telemetry(aws):
    s3, kinesis = aws
    event = png_study(s3)
    prepared = run("prepare_tensors", run("validate_metadata", event))
    card = {"model_trained": True, "model_trained_on": "NIH ChestX-ray14", "model_licence": "CC-BY-4.0",
            "model_sha256": "cd" * 32}
    run("send_telemetry", run("store_results", {**prepared, "inference_results": {**INFERENCE, **card}}))
    result = read_json(s3, RESULTS, f"results/S-001/{ref_of(event)}.json")
    [(_, record)] = telemetry_records(kinesis)
    assert {k: result[k] for k in card} == {k: record[k] for k in card} == card


def test_deidentified_dicom_takes_its_metadata_from_its_tags(aws):
    s3, _ = aws
    data = deidentified_cr()
    validated = run("validate_metadata", upload(s3, "incoming/CR-1.dcm", data))
    assert validated["format"] == "dicom"
    study_uid = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).StudyInstanceUID
    assert validated["study_id"] == dicom_study_id(study_uid) and validated["metadata"]["view"] == "LL"
    prepared = run("prepare_tensors", validated)
    assert prepared["tensor"]["shape"] == [1, 224, 224]


def test_sixteen_bit_png_works(aws):
    s3, _ = aws
    s3.put_object(Bucket=IMAGES, Key="incoming/S-16.json", Body=json.dumps({**SIDECAR, "study_id": "S-16"}))
    pixels = (smooth_image(200, 200).astype(np.uint16) * 200)
    event = upload(s3, "incoming/S-16.png", raster(pixels, "PNG"))
    prepared = run("prepare_tensors", run("validate_metadata", event))
    assert decode_tensor(s3.get_object(Bucket=ARTIFACTS, Key=f"tensors/S-16/{ref_of(event)}.npy")["Body"].read()).std() > 0
    assert prepared["study_id"] == "S-16"


def test_a_late_sidecar_is_missing_metadata_then_succeeds(aws):
    s3, _ = aws
    event = upload(s3, "incoming/LATE-1.png", raster(smooth_image(64, 64), "PNG"))
    with pytest.raises(errors.MissingMetadata, match="no sidecar") as caught:
        run("validate_metadata", event)
    assert caught.value.retryable and "MissingMetadata" in errors.RETRYABLE_ERROR_TYPES
    s3.put_object(Bucket=IMAGES, Key="incoming/LATE-1.json", Body=json.dumps({**SIDECAR, "study_id": "LATE-1"}))
    assert run("validate_metadata", event)["study_id"] == "LATE-1"


def test_a_sidecar_names_the_study_whatever_the_image_is_called(aws):
    s3, _ = aws
    s3.put_object(Bucket=IMAGES, Key="incoming/DOE_JANE.json", Body=json.dumps({**SIDECAR, "study_id": "ST-77"}))
    event = upload(s3, "incoming/DOE_JANE.Png", raster(smooth_image(64, 64), "PNG"))
    validated = run("validate_metadata", event)
    assert validated["study_id"] == "ST-77" and "DOE" not in validated["input_ref"]


def test_each_stage_reads_the_version_the_event_named(aws):
    s3, _ = aws
    first = png_study(s3)
    validated = run("validate_metadata", first)
    upload(s3, "incoming/S-001.png", raster(smooth_image(300, 260)[::-1].copy(), "PNG"))  # overwritten meanwhile
    prepared = run("prepare_tensors", validated)
    original = s3.get_object(Bucket=IMAGES, Key="incoming/S-001.png", VersionId=validated["version_id"])["Body"].read()
    assert prepared["input_sha256"] == hashlib.sha256(original).hexdigest()


def test_two_objects_claiming_one_id_keep_both_results_and_the_later_reports_the_collision(aws):
    s3, kinesis = aws
    stored = []
    for name in ("A", "B"):
        s3.put_object(Bucket=IMAGES, Key=f"incoming/{name}.json", Body=json.dumps(SIDECAR))
        event = upload(s3, f"incoming/{name}.png", raster(smooth_image(64, 64), "PNG"))
        prepared = run("prepare_tensors", run("validate_metadata", event))
        stored.append(run("store_results", {**prepared, "inference_results": INFERENCE}))
        run("send_telemetry", stored[-1])
    first, second = (read_json(s3, RESULTS, r["results_s3_path"].split("/", 3)[3]) for r in stored)
    assert first["input_key"] == "incoming/A.png" and second["input_key"] == "incoming/B.png"
    assert (first["id_collision"], second["id_collision"]) == (False, True)
    assert second["colliding_inputs"] == [first["input_ref"]]
    assert [r["id_collision"] for _, r in telemetry_records(kinesis)] == [False, True]


def test_a_reupload_of_the_same_key_is_no_collision(aws):
    s3, _ = aws
    for _ in range(2):
        prepared = run("prepare_tensors", run("validate_metadata", png_study(s3)))
        reply = run("store_results", {**prepared, "inference_results": INFERENCE})
    assert reply["result"]["id_collision"] is False
    assert len([k for k in results_keys(s3) if k.startswith("results/S-001/")]) == 2  # one per version


def test_the_lambdas_and_the_cli_agree_on_the_incoming_prefix():
    assert PIPELINE_INCOMING_PREFIX == INCOMING_PREFIX


# --- bad inputs: the typed error each one raises, and where -------------------------------------


def _sidecar_then(s3, study_id: str, key: str, body: bytes, **sidecar) -> dict:
    s3.put_object(Bucket=IMAGES, Key=f"incoming/{study_id}.json", Body=json.dumps({**SIDECAR, "study_id": study_id, **sidecar}))
    return upload(s3, key, body)


BAD_AT_VALIDATE = {
    "random bytes named .jpg": (lambda s3: _sidecar_then(s3, "R-1", "incoming/R-1.jpg", bytes(range(256)) * 8),
                                errors.UnsupportedFormat, "looks like unknown, not a DICOM"),
    "gzip named .dcm.gz": (lambda s3: upload(s3, "incoming/Z-1.dcm.gz", gzip.compress(b"DICM" * 64)),
                           errors.UnsupportedFormat, "looks like gzip"),
    "TIFF named .tif": (lambda s3: _sidecar_then(s3, "TIF-1", "incoming/TIF-1.tif", b"II*\x00" + bytes(200)),
                        errors.UnsupportedFormat, "looks like TIFF"),
    "JSON under an image name": (lambda s3: upload(s3, "incoming/J-1.JSON", b'{"study_id": "J-1"}'),
                                 errors.UnsupportedFormat, "looks like JSON"),
    "an object outside incoming/": (lambda s3: upload(s3, "elsewhere/O-1.png", raster(smooth_image(32, 32), "PNG")),
                                    errors.NotUnderIncoming, "not under incoming/"),
    "empty file": (lambda s3: _sidecar_then(s3, "E-1", "incoming/E-1.png", b""), errors.UnsupportedImage, "empty"),
    "sidecar with ../ in the id": (lambda s3: (s3.put_object(Bucket=IMAGES, Key="incoming/T-1.json",
                                                             Body=json.dumps({**SIDECAR, "study_id": "../T-1"})),
                                              upload(s3, "incoming/T-1.png", raster(smooth_image(32, 32), "PNG")))[1],
                                   errors.InvalidMetadata, "study_id"),
    "sidecar with a unicode look-alike id": (lambda s3: (s3.put_object(Bucket=IMAGES, Key="incoming/U-1.json",
                                                                       Body=json.dumps({**SIDECAR, "study_id": "U\u20111"})),
                                                         upload(s3, "incoming/U-1.png", raster(smooth_image(32, 32), "PNG")))[1],
                                             errors.InvalidMetadata, "study_id"),
    "sidecar with wrong types": (lambda s3: _sidecar_then(s3, "W-1", "incoming/W-1.png", raster(smooth_image(32, 32), "PNG"),
                                                          view=7), errors.InvalidMetadata, "view"),
    "sidecar with a huge field": (lambda s3: _sidecar_then(s3, "H-1", "incoming/H-1.png", raster(smooth_image(32, 32), "PNG"),
                                                           site_code="x" * 5000), errors.InvalidMetadata, "4096"),
    "DICOM still carrying identity": (lambda s3: upload(s3, "incoming/ID-1.dcm", sample_bytes(CR_FILES[0])),
                                      errors.IdentifiedDicom, "PatientName"),
    "sidecar not declaring burned-in annotation": (
        lambda s3: (s3.put_object(Bucket=IMAGES, Key="incoming/N-1.json",
                                  Body=json.dumps({k: v for k, v in SIDECAR.items() if k != "burned_in_annotation"}
                                                  | {"study_id": "N-1"})),
                    upload(s3, "incoming/N-1.png", raster(smooth_image(32, 32), "PNG")))[1],
        errors.InvalidMetadata, "'burned_in_annotation' is missing"),
    "sidecar declaring burned-in annotation": (
        lambda s3: _sidecar_then(s3, "Y-1", "incoming/Y-1.png", raster(smooth_image(32, 32), "PNG"),
                                 burned_in_annotation=True), errors.InvalidMetadata, "'burned_in_annotation' is true"),
    "start input metadata not declaring burned-in annotation": (
        lambda s3: {**upload(s3, "incoming/I-1.png", raster(smooth_image(32, 32), "PNG")),
                    "metadata": {"study_id": "I-1", "view": "PA", "timestamp": "2024-01-15T10:00:00Z"}},
        errors.InvalidMetadata, "'burned_in_annotation' is missing"),
}


@pytest.mark.parametrize("case", sorted(BAD_AT_VALIDATE))
def test_bad_inputs_are_refused_by_validate_with_a_typed_error(aws, case):
    make, error_type, message = BAD_AT_VALIDATE[case]
    with pytest.raises(error_type, match=message) as caught:
        run("validate_metadata", make(aws[0]))
    assert not caught.value.retryable


BAD_AT_PREPARE = {
    "truncated PNG": (lambda: raster(smooth_image(256, 256), "PNG")[:900], "png", errors.CorruptImage),
    "truncated JPEG": (lambda: raster(smooth_image(256, 256), "JPEG")[:700], "jpg", errors.CorruptImage),
    "PNG decompression bomb": (lambda: png_with_header(9000, 9000), "png", errors.ImageTooLarge),
    "image 20 000 px wide": (lambda: png_with_header(20000, 10), "png", errors.ImageTooLarge),
    "RGB DICOM": (rgb_dicom, "dcm", errors.UnsupportedImage),
}


@pytest.mark.parametrize("case", sorted(BAD_AT_PREPARE))
def test_bad_images_pass_validate_and_are_refused_by_prepare(aws, case):
    s3, _ = aws
    make, extension, error_type = BAD_AT_PREPARE[case]
    event = _sidecar_then(s3, "B-1", f"incoming/B-1.{extension}", make())
    validated = run("validate_metadata", event)
    with pytest.raises(error_type):
        run("prepare_tensors", validated)
    assert s3.list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0


def test_validate_refuses_an_object_over_max_image_bytes_from_its_size(aws, monkeypatch):
    s3, _ = aws
    event = png_study(s3)
    size = s3.head_object(Bucket=IMAGES, Key="incoming/S-001.png")["ContentLength"]
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(size - 1))
    with pytest.raises(errors.ImageTooLarge, match=f"{size} bytes; the limit is {size - 1}"):
        run("validate_metadata", event)
    monkeypatch.setenv("MAX_IMAGE_BYTES", str(size))
    assert run("validate_metadata", event)["study_id"] == "S-001"


def test_prepare_refuses_an_image_over_max_pixels_before_decoding_it(aws, monkeypatch):
    from PIL import PngImagePlugin

    s3, _ = aws
    validated = run("validate_metadata", png_study(s3))  # a 300 x 260 PNG: 78 000 pixels
    monkeypatch.setenv("MAX_PIXELS", "77999")

    def decode(*_):  # a decode would turn this into CorruptImage, not ImageTooLarge
        raise AssertionError("the pixels were decoded")

    with monkeypatch.context() as patched:
        patched.setattr(PngImagePlugin.PngImageFile, "load", decode)
        with pytest.raises(errors.ImageTooLarge, match="78000 pixels; the limit is 77999"):
            run("prepare_tensors", validated)
    assert s3.list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0
    monkeypatch.setenv("MAX_PIXELS", "78000")
    assert run("prepare_tensors", validated)["tensor"]["shape"] == [1, 224, 224]


def test_dicom_without_pixel_data_is_unsupported(aws):
    from radstream.pipeline.deid import deidentify

    ds = dataset(CR_FILES[1])
    del ds.PixelData
    event = upload(aws[0], "incoming/NP-1.dcm", dicom_bytes(deidentify(ds, DEID_KEY)))
    with pytest.raises(errors.UnsupportedImage, match="no pixel data"):
        run("prepare_tensors", run("validate_metadata", event))


# --- inference -----------------------------------------------------------------------------------


def _prepared(s3) -> dict:
    return run("prepare_tensors", run("validate_metadata", png_study(s3)))


def test_inference_is_not_wired_until_the_endpoint_is_set(aws):
    with pytest.raises(errors.InferenceNotWired, match="phase 4"):
        run("invoke_inference", _prepared(aws[0]))


def test_an_unreachable_endpoint_is_retryable_inference_unavailable(aws, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("INFERENCE_ENDPOINT", f"http://127.0.0.1:{port}")
    with pytest.raises(errors.InferenceUnavailable, match="3 attempt") as caught:
        run("invoke_inference", _prepared(aws[0]))
    assert caught.value.retryable


# --- failures ------------------------------------------------------------------------------------


def _caught(error_type: str, message: str) -> dict:
    return {"Error": error_type, "Cause": json.dumps({"errorType": error_type, "errorMessage": message})}


def test_store_failure_quarantines_the_original_and_reports_why(aws):
    s3, kinesis = aws
    validated = run("validate_metadata", _sidecar_then(s3, "C-1", "incoming/C-1.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40))
    event = {**validated, "failure": {"PrepareImage": _caught("CorruptImage", "the PNG cannot be decoded")}}
    reply = run("store_failure", event)

    assert reply["status"] == "FAILED" and reply["study_id"] == "C-1"
    reason = read_json(s3, RESULTS, f"failed/C-1/{validated['input_ref']}/reason.json")
    assert (reason["stage"], reason["error_type"]) == ("prepare", "CorruptImage")
    assert reason["message"] == "the PNG cannot be decoded"
    assert reason["input_key"] == "incoming/C-1.png" and reason["copied"] is True
    copy = s3.get_object(Bucket=RESULTS, Key=f"failed/C-1/{validated['input_ref']}/original")["Body"].read()
    assert copy == s3.get_object(Bucket=IMAGES, Key="incoming/C-1.png")["Body"].read()
    [(partition, record)] = telemetry_records(kinesis)
    assert partition == "C-1"
    assert (record["status"], record["error_stage"], record["error_type"]) == ("FAILED", "prepare", "CorruptImage")
    assert record["validate_ms"] == validated["processing_time_ms"]["validate"]


SFN = "arn:aws:states:us-east-1:123456789012:stateMachine:t-pipeline"


def status_change(trigger: dict, status: str, error: str | None = None, cause: str | None = None) -> dict:
    """The event EventBridge delivers when an execution ends: its input is the trigger, as JSON text."""
    return {"source": "aws.states", "detail-type": "Step Functions Execution Status Change",
            "detail": {"executionArn": f"{SFN.replace(':stateMachine:', ':execution:')}:run-1", "stateMachineArn": SFN,
                       "status": status, "input": json.dumps(trigger), "output": None, "error": error, "cause": cause}}


def dead_letter(trigger: dict, code: str, message: str) -> dict:
    """What Lambda hands the function mapped to the dead-letter queue: the undelivered event as the body."""
    attributes = {"ERROR_CODE": code, "ERROR_MESSAGE": message, "RULE_ARN": "arn:aws:events:us-east-1:1:rule/t-up",
                  "TARGET_ARN": SFN}
    return {"Records": [{"messageId": "m-1", "body": json.dumps(trigger), "eventSource": "aws:sqs",
                         "messageAttributes": {k: {"stringValue": v, "dataType": "String"} for k, v in attributes.items()}}]}


@pytest.mark.parametrize("status", ["TIMED_OUT", "ABORTED", "FAILED"])
def test_an_execution_that_ended_outside_every_catch_is_recorded_without_a_copy(aws, status):
    s3, kinesis = aws
    trigger = upload(s3, "incoming/T-1.png", raster(smooth_image(64, 64), "PNG"))
    reply = run("store_failure", status_change(trigger, status, *(("Lambda.Unknown", "crashed") if status == "FAILED" else ())))

    # Its content was never read: the id is a hash of the key, the record filed under the version named.
    study_id = key_study_id("incoming/T-1.png")
    assert reply["status"] == "FAILED" and reply["study_id"] == study_id
    reason_key = f"failed/{study_id}/{ref_of(trigger)}/reason.json"
    reason = read_json(s3, RESULTS, reason_key)
    assert (reason["stage"], reason["error_type"], reason["copied"]) == ("execution", status, False)
    assert reason["input_key"] == "incoming/T-1.png" and reason["execution_arn"].endswith(":run-1")
    assert results_keys(s3) == {reason_key}
    [(_, record)] = telemetry_records(kinesis)
    assert (record["status"], record["error_stage"], record["error_type"]) == ("FAILED", "execution", status)


def test_an_execution_its_catch_recorded_keeps_that_record(aws):
    s3, kinesis = aws
    validated = run("validate_metadata", _sidecar_then(s3, "C-2", "incoming/C-2.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40))
    run("store_failure", {**validated, "failure": {"PrepareImage": _caught("CorruptImage", "cannot be decoded")}})
    before = results_keys(s3)
    [caught_record] = [k for k in before if k.startswith("failed/C-2/") and k.endswith("/reason.json")]
    recorded = read_json(s3, RESULTS, caught_record)

    ended = status_change(upload(s3, "incoming/C-2.png", b"x"), "FAILED", "PipelineFailed", "see reason.json")
    assert run("store_failure", ended) == {"status": "ALREADY_RECORDED"}
    assert results_keys(s3) == before and read_json(s3, RESULTS, caught_record) == recorded
    assert len(telemetry_records(kinesis)) == 1
    assert run("store_failure", status_change(upload(s3, "incoming/C-3.png", b"x"), "SUCCEEDED")) == \
        {"status": "ALREADY_RECORDED"}
    assert results_keys(s3) == before


def test_an_undelivered_upload_from_the_dead_letter_queue_is_recorded_with_the_error_code(aws):
    s3, kinesis = aws
    trigger = upload(s3, "incoming/D-1.dcm", b"DICM")
    reply = run("store_failure", dead_letter(trigger, "NO_PERMISSIONS", "not authorized to perform states:StartExecution"))

    [record_reply] = reply["records"]
    assert record_reply["study_id"] == key_study_id("incoming/D-1.dcm")
    reason = read_json(s3, RESULTS, f"failed/{record_reply['study_id']}/{ref_of(trigger)}/reason.json")
    assert (reason["stage"], reason["error_type"], reason["copied"]) == ("delivery", "NO_PERMISSIONS", False)
    assert "states:StartExecution" in reason["message"] and SFN in reason["message"]
    assert reason["input_key"] == "incoming/D-1.dcm" and "execution_arn" not in reason
    [(_, record)] = telemetry_records(kinesis)
    assert (record["error_stage"], record["error_type"]) == ("delivery", "NO_PERMISSIONS")


def test_a_dead_letter_that_is_no_event_stays_in_the_queue(aws):
    with pytest.raises(ValueError, match="not JSON"):
        run("store_failure", {"Records": [{"messageId": "m-2", "body": "<xml/>", "eventSource": "aws:sqs"}]})


def test_store_failure_without_a_valid_study_id_derives_one_from_a_hash_of_the_key(aws):
    s3, kinesis = aws
    event = upload(s3, "incoming/../SMITH JOHN.png", b"x")
    reply = run("store_failure", {**event, "failure": {"ValidateInput": _caught("InvalidMetadata", "bad id")}})
    study_id = reply["study_id"]
    assert study_id == key_study_id("incoming/../SMITH JOHN.png")
    reason = read_json(s3, RESULTS, f"failed/{study_id}/{ref_of(event)}/reason.json")
    assert (reason["stage"], reason["input_key"]) == ("validate", "incoming/../SMITH JOHN.png")
    assert results_keys(s3) == {f"failed/{study_id}/{ref_of(event)}/reason.json", f"failed/{study_id}/{ref_of(event)}/original"}
    [(partition, record)] = telemetry_records(kinesis)
    assert partition == study_id and "SMITH" not in json.dumps(record)


def _failure_of(exc: errors.PipelineError) -> dict:
    """The Catch payload Step Functions hands on for a Lambda that raised `exc`."""
    return _caught(exc.error_type, str(exc))


def test_a_header_the_identity_check_cannot_read_is_quarantined_without_a_copy_or_its_text(aws):
    s3, kinesis = aws
    damaged = dicom_with_unreadable_element(deidentified_cr(2))
    event = upload(s3, "incoming/DMG-1.dcm", damaged)
    with pytest.raises(errors.IdentifiedDicom) as caught:
        run("validate_metadata", event)
    assert caught.value.reason == ("the DICOM still carries identity: the identity check could not read the header "
                                   "(BytesLengthException)")

    run("store_failure", {**event, "failure": {"ValidateInput": _failure_of(caught.value)}})
    reason_key = f"failed/{key_study_id('incoming/DMG-1.dcm')}/{ref_of(event)}/reason.json"
    reason = read_json(s3, RESULTS, reason_key)
    assert (reason["error_type"], reason["copied"]) == ("IdentifiedDicom", False)
    assert reason["message"] == caught.value.reason
    assert results_keys(s3) == {reason_key}
    [(_, record)] = telemetry_records(kinesis)
    assert (record["error_type"], record["error_message"]) == ("IdentifiedDicom", caught.value.reason)


def test_store_failure_does_not_copy_what_failed_validation_by_timeout_or_crash(aws):
    s3, _ = aws
    event = upload(s3, "incoming/TO-1.dcm", sample_bytes(CR_FILES[0]))
    run("store_failure", {**event, "failure": {"ValidateInput": {"Error": "States.Timeout", "Cause": "timed out"}}})
    reason_key = f"failed/{key_study_id('incoming/TO-1.dcm')}/{ref_of(event)}/reason.json"
    reason = read_json(s3, RESULTS, reason_key)
    assert (reason["stage"], reason["copied"]) == ("validate", False)
    assert results_keys(s3) == {reason_key}


def test_store_failure_reports_states_errors_and_does_not_copy_identified_dicoms(aws):
    s3, _ = aws
    event = upload(s3, "incoming/ID-2.dcm", sample_bytes(CR_FILES[0]))
    timeout = {"Error": "States.Timeout", "Cause": "The task timed out."}
    run("store_failure", {**event, "failure": {"ValidateInput": _caught("IdentifiedDicom", "PatientName is present")}})
    reason_key = f"failed/{key_study_id('incoming/ID-2.dcm')}/{ref_of(event)}/reason.json"
    reason = read_json(s3, RESULTS, reason_key)
    assert reason["copied"] is False
    assert results_keys(s3) == {reason_key}

    # The original's version may be gone by now (a plain delete would only hide it behind a marker).
    s3.delete_object(Bucket=IMAGES, Key="incoming/ID-2.dcm", VersionId=event["detail"]["object"]["version-id"])
    run("store_failure", {**event, "failure": {"InvokeInference": timeout}})
    reason = read_json(s3, RESULTS, reason_key)
    assert (reason["stage"], reason["error_type"], reason["message"]) == ("inference", "States.Timeout", "The task timed out.")
    assert reason["copied"] is False


# --- packaging -----------------------------------------------------------------------------------

# Import names of the distributions in the layer (boto3 and botocore come with the Lambda runtime).
_PROVIDED = {"numpy", "PIL", "pydicom", "pydantic", "pydantic_core", "pylibjpeg", "libjpeg", "openjpeg", "rle",
             "annotated_types", "typing_extensions", "typing_inspection", "boto3", "botocore"}
_LAYER_DISTRIBUTIONS = {"numpy", "pillow", "pydicom", "pydantic", "pydantic-core", "pylibjpeg", "pylibjpeg-libjpeg",
                        "pylibjpeg-openjpeg", "pylibjpeg-rle", "annotated-types", "typing-extensions", "typing-inspection"}


def test_the_layer_provides_every_third_party_import_of_the_function_code():
    assert {r.split("==")[0] for r in LAYER_REQUIREMENTS} == _LAYER_DISTRIBUTIONS
    assert all("==" in r for r in LAYER_REQUIREMENTS), "pin every layer requirement"
    sources = [*(ROOT / "radstream" / "pipeline").glob("*.py"), *(ROOT / "lambdas").glob("*/handler.py")]
    imported = set()
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"radstream", "__future__"}
    assert third_party <= _PROVIDED, f"not in the layer: {sorted(third_party - _PROVIDED)}"


def test_lambda_support_rejects_inputs_without_a_location():
    with pytest.raises(ValueError, match="Object Created"):
        lambda_support.input_location({"detail": {"bucket": {"name": "b"}}})
    with pytest.raises(ValueError, match="s3://"):
        lambda_support.split_s3_path("https://b/k")
    assert lambda_support.input_location({"s3_path": "s3://b/incoming/x.png", "detail": {}}) == ("b", "incoming/x.png")
