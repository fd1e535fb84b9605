"""`radstream ingest`'s upload logic against in-process moto S3: DICOM de-identified (or refused),
sidecars uploaded before their images, folders searched, one bad file not stopping the batch."""

from __future__ import annotations

import io
import json
import shutil

import pydicom
import pytest
from moto import mock_aws

from radstream.ingest import ingest_files
from radstream.pipeline.deid import deidentify_bytes, is_identified
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    dataset,
    dicom_bytes,
    raster,
    sample_path,
    smooth_image,
)

BUCKET = "ingest-images"


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        calls: list[str] = []
        client.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: calls.append(params["Key"]))
        client.put_calls = calls
        yield client


def body(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_a_dicom_is_deidentified_before_upload(s3, tmp_path):
    shutil.copy(sample_path(CR_FILES[0]), tmp_path / "CR-1")
    result = ingest_files(s3, BUCKET, [tmp_path / "CR-1"])
    assert result["ok"], result
    assert result["counts"] == {"uploaded": 1, "refused": 0, "failed": 0}
    [entry] = result["studies"]
    assert (entry["study_id"], entry["format"], entry["keys"], entry["deidentified"]) == ("CR-1", "dicom", ["incoming/CR-1.dcm"], True)
    uploaded = pydicom.dcmread(io.BytesIO(body(s3, "incoming/CR-1.dcm")))
    assert is_identified(uploaded) == []
    assert "Archibald" not in str(uploaded.get("PatientName", ""))
    assert uploaded.PixelData == dataset(CR_FILES[0]).PixelData


def test_a_dicom_that_stays_identified_is_refused_unless_already_deidentified(s3, tmp_path):
    ds = dataset(CR_FILES[1])
    ds.BurnedInAnnotation = "YES"  # the basic profile cannot clean pixels
    (tmp_path / "burned.dcm").write_bytes(dicom_bytes(ds))
    refused = ingest_files(s3, BUCKET, [tmp_path / "burned.dcm"])
    assert not refused["ok"] and refused["studies"][0]["status"] == "refused"
    assert "Burned In Annotation" in refused["studies"][0]["error"]
    assert s3.put_calls == []

    trusted = ingest_files(s3, BUCKET, [tmp_path / "burned.dcm"], already_deidentified=True)
    entry = trusted["studies"][0]
    assert trusted["ok"] and entry["deidentified"] is False and entry["warnings"]
    assert body(s3, "incoming/burned.dcm") == (tmp_path / "burned.dcm").read_bytes()  # unchanged


def test_already_deidentified_files_keep_their_uids(s3, tmp_path):
    once = deidentify_bytes(sample_path(CR_FILES[2]).read_bytes())
    (tmp_path / "CR-3.dcm").write_bytes(once)
    assert ingest_files(s3, BUCKET, [tmp_path / "CR-3.dcm"], already_deidentified=True)["ok"]
    assert body(s3, "incoming/CR-3.dcm") == once


def test_png_and_jpeg_go_up_with_their_sidecar_first(s3, tmp_path):
    sidecar = {"study_id": "S-9", "view": "AP", "timestamp": "2024-02-01T08:00:00Z"}
    (tmp_path / "a.png").write_bytes(raster(smooth_image(64, 64), "PNG"))
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    (tmp_path / "b.jpeg").write_bytes(raster(smooth_image(64, 64), "JPEG"))
    (tmp_path / "b.json").write_text(json.dumps({**sidecar, "study_id": "S-10"}))
    result = ingest_files(s3, BUCKET, [tmp_path / "a.png", tmp_path / "b.jpeg"])
    assert result["ok"]
    assert s3.put_calls == ["incoming/S-9.json", "incoming/S-9.png", "incoming/S-10.json", "incoming/S-10.jpg"]
    assert json.loads(body(s3, "incoming/S-9.json")) == sidecar


def test_bad_files_are_reported_and_do_not_stop_the_batch(s3, tmp_path):
    (tmp_path / "nosidecar.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "badid.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "badid.json").write_text(json.dumps({"study_id": "../x", "view": "PA", "timestamp": "2024-01-01T00:00:00Z"}))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "good.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "good.json").write_text(json.dumps({"study_id": "G-1", "view": "PA", "timestamp": "2024-01-01T00:00:00Z"}))
    (tmp_path / "z-dup.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "z-dup.json").write_text(json.dumps({"study_id": "G-1", "view": "PA", "timestamp": "2024-01-01T00:00:00Z"}))

    from_folder = ingest_files(s3, BUCKET, [tmp_path])  # notes.txt is skipped, not refused
    by_path = {e["path"].rsplit("/", 1)[-1]: e for e in from_folder["studies"]}
    assert set(by_path) == {"badid.png", "z-dup.png", "good.png", "nosidecar.png"}
    assert by_path["good.png"]["status"] == "uploaded"
    assert "nosidecar.json" in by_path["nosidecar.png"]["error"]
    assert "study_id" in by_path["badid.png"]["error"]
    assert "also used by" in by_path["z-dup.png"]["error"] and by_path["z-dup.png"]["status"] == "refused"
    assert from_folder["counts"] == {"uploaded": 1, "refused": 3, "failed": 0} and not from_folder["ok"]

    named = ingest_files(s3, BUCKET, [tmp_path / "notes.txt", tmp_path / "good.json"])
    assert [e["status"] for e in named["studies"]] == ["refused", "refused"]
    assert "sidecar" in named["studies"][1]["error"]
