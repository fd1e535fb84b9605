"""`radstream ingest`'s upload logic against in-process moto S3: DICOM de-identified (or refused, even
when declared already de-identified), sidecars uploaded before their images, folders searched, one
bad file not stopping the batch."""

from __future__ import annotations

import io
import json
import shutil

import pydicom
import pytest
from moto import mock_aws

from radstream.ingest import ingest_files
from radstream.pipeline.deid import deidentify, deidentify_bytes, dicom_study_id, is_identified
from tests.unit.pipeline_fixtures import (
    CR_FILES,
    DEID_KEY,
    dataset,
    dicom_bytes,
    dicom_with_unreadable_element,
    raster,
    sample_path,
    sidecar_fields,
    smooth_image,
)

BUCKET = "ingest-images"


def KEY() -> bytes:  # noqa: N802 - stands where a key source goes
    return DEID_KEY


def NO_KEY() -> bytes:  # noqa: N802
    from radstream.errors import RadstreamError

    raise RadstreamError("no key here")


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
    result = ingest_files(s3, BUCKET, [tmp_path / "CR-1"], KEY)
    assert result["ok"], result
    assert result["counts"] == {"uploaded": 1, "refused": 0, "failed": 0}
    [entry] = result["studies"]
    study_id = entry["study_id"]
    assert (entry["format"], entry["keys"], entry["deidentified"]) == ("dicom", [f"incoming/{study_id}.dcm"], True)
    uploaded = pydicom.dcmread(io.BytesIO(body(s3, f"incoming/{study_id}.dcm")))
    assert study_id == dicom_study_id(uploaded.StudyInstanceUID)  # from the pseudonymous UID, not the file name
    assert is_identified(uploaded) == []
    assert "Archibald" not in str(uploaded.get("PatientName", ""))
    assert uploaded.PixelData == dataset(CR_FILES[0]).PixelData


@pytest.mark.parametrize("already_deidentified", [False, True])
def test_a_dicom_that_stays_identified_is_refused_whatever_the_flag_says(s3, tmp_path, already_deidentified):
    ds = deidentify(dataset(CR_FILES[1]), DEID_KEY)
    ds.BurnedInAnnotation = "YES"  # the basic profile cannot clean pixels
    (tmp_path / "burned.dcm").write_bytes(dicom_bytes(ds))
    refused = ingest_files(s3, BUCKET, [tmp_path / "burned.dcm"], KEY, already_deidentified=already_deidentified)
    assert not refused["ok"] and refused["studies"][0]["status"] == "refused"
    assert "Burned In Annotation" in refused["studies"][0]["error"]
    assert s3.put_calls == []


def test_an_identified_dicom_declared_already_deidentified_is_refused(s3, tmp_path):
    shutil.copy(sample_path(CR_FILES[0]), tmp_path / "named.dcm")  # claims Patient Identity Removed, has a name
    result = ingest_files(s3, BUCKET, [tmp_path / "named.dcm"], NO_KEY, already_deidentified=True)
    [entry] = result["studies"]
    assert entry["status"] == "refused" and "PatientName is present" in entry["error"]
    assert s3.put_calls == []


def test_a_dicom_whose_header_the_check_cannot_read_is_refused(s3, tmp_path):
    clean = deidentify_bytes(sample_path(CR_FILES[2]).read_bytes(), DEID_KEY)
    (tmp_path / "damaged.dcm").write_bytes(dicom_with_unreadable_element(clean))
    result = ingest_files(s3, BUCKET, [tmp_path / "damaged.dcm"], NO_KEY, already_deidentified=True)
    [entry] = result["studies"]
    assert entry["status"] == "refused" and "could not read the header (BytesLengthException)" in entry["error"]
    assert s3.put_calls == []


def test_a_dicom_to_deidentify_fails_with_the_key_s_reason_when_there_is_none(s3, tmp_path):
    shutil.copy(sample_path(CR_FILES[0]), tmp_path / "CR-1")
    [entry] = ingest_files(s3, BUCKET, [tmp_path / "CR-1"], NO_KEY)["studies"]
    assert entry["status"] == "failed" and "no key here" in entry["error"] and s3.put_calls == []


def test_already_deidentified_files_keep_their_uids(s3, tmp_path):
    once = deidentify_bytes(sample_path(CR_FILES[2]).read_bytes(), DEID_KEY)
    (tmp_path / "CR-3.dcm").write_bytes(once)
    result = ingest_files(s3, BUCKET, [tmp_path / "CR-3.dcm"], NO_KEY, already_deidentified=True)
    assert result["ok"] and result["studies"][0]["warnings"]  # CR without Burned In Annotation: reported
    assert body(s3, result["studies"][0]["keys"][0]) == once


def test_png_and_jpeg_go_up_with_their_sidecar_first(s3, tmp_path):
    sidecar = sidecar_fields("S-9", view="AP")
    (tmp_path / "a.png").write_bytes(raster(smooth_image(64, 64), "PNG"))
    (tmp_path / "a.json").write_text(json.dumps(sidecar))
    (tmp_path / "b.jpeg").write_bytes(raster(smooth_image(64, 64), "JPEG"))
    (tmp_path / "b.json").write_text(json.dumps({**sidecar, "study_id": "S-10"}))
    result = ingest_files(s3, BUCKET, [tmp_path / "a.png", tmp_path / "b.jpeg"], NO_KEY)
    assert result["ok"]
    assert s3.put_calls == ["incoming/S-9.json", "incoming/S-9.png", "incoming/S-10.json", "incoming/S-10.jpg"]
    assert json.loads(body(s3, "incoming/S-9.json")) == sidecar


def test_bad_files_are_reported_and_do_not_stop_the_batch(s3, tmp_path):
    (tmp_path / "nosidecar.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "badid.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "badid.json").write_text(json.dumps(sidecar_fields("../x")))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "good.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "good.json").write_text(json.dumps(sidecar_fields("G-1")))
    (tmp_path / "z-dup.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "z-dup.json").write_text(json.dumps(sidecar_fields("G-1")))
    (tmp_path / "burned.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "burned.json").write_text(json.dumps(sidecar_fields("B-1", burned_in_annotation=True)))
    (tmp_path / "undeclared.png").write_bytes(raster(smooth_image(32, 32), "PNG"))
    (tmp_path / "undeclared.json").write_text(json.dumps({"study_id": "U-1", "view": "PA", "timestamp": "2024-01-01T00:00:00Z"}))

    from_folder = ingest_files(s3, BUCKET, [tmp_path], NO_KEY)  # notes.txt is skipped, not refused
    by_path = {e["path"].rsplit("/", 1)[-1]: e for e in from_folder["studies"]}
    assert set(by_path) == {"badid.png", "z-dup.png", "good.png", "nosidecar.png", "burned.png", "undeclared.png"}
    assert "'burned_in_annotation' is true" in by_path["burned.png"]["error"]
    assert "'burned_in_annotation' is missing" in by_path["undeclared.png"]["error"]
    assert by_path["good.png"]["status"] == "uploaded"
    assert "nosidecar.json" in by_path["nosidecar.png"]["error"]
    assert "study_id" in by_path["badid.png"]["error"]
    assert "also used by" in by_path["z-dup.png"]["error"] and by_path["z-dup.png"]["status"] == "refused"
    assert from_folder["counts"] == {"uploaded": 1, "refused": 5, "failed": 0} and not from_folder["ok"]

    named = ingest_files(s3, BUCKET, [tmp_path / "notes.txt", tmp_path / "good.json"], NO_KEY)
    assert [e["status"] for e in named["studies"]] == ["refused", "refused"]
    assert "sidecar" in named["studies"][1]["error"]
