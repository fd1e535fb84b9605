"""The demo and load-test studies: good ones go through the pipeline's own decoding and metadata
code, bad ones fail in it with the stage and error they promise, and the sets are deterministic."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from radstream.pipeline.deid import dicom_study_id
from radstream.pipeline.errors import PipelineError
from radstream.pipeline.metadata import parse_sidecar
from radstream.pipeline.preprocess import prepare
from radstream.pipeline.readers import sniff
from radstream.pipeline.study_ids import check_study_id, key_study_id
from radstream.studies import (
    DEMO_PREFIX,
    REAL_STUDY_NAME,
    chest_pixels,
    damaged,
    demo_studies,
    load_id_prefix,
    load_study,
)


@pytest.fixture(scope="module")
def studies():
    return demo_studies()


def pipeline_outcome(study) -> tuple[str, str] | None:
    """What ValidateInput and PrepareImage make of the study: None when it goes through, else the
    (stage, error type) it would be quarantined with."""
    try:
        if study.kind != "dicom":
            assert parse_sidecar(study.objects[0][1]).study_id == study.study_id
        prepared = prepare(study.objects[-1][1])
    except PipelineError as exc:
        return exc.stage, exc.error_type
    assert prepared.tensor.shape == (1, 224, 224) and prepared.tensor.dtype == np.uint8
    return None


def test_every_study_reaches_the_outcome_it_promises(studies):
    for study in studies:
        assert pipeline_outcome(study) == study.expected_failure, study.name


def test_each_study_knows_the_id_the_pipeline_gives_it(studies):
    import pydicom

    for study in studies:
        if study.kind == "dicom":
            uid = pydicom.dcmread(io.BytesIO(study.objects[-1][1]), stop_before_pixels=True).StudyInstanceUID
            assert study.study_id == dicom_study_id(uid), study.name
        elif study.name == "DEMO-BAD-TRAVERSAL":
            assert study.study_id == key_study_id(study.image_key)
        else:
            assert study.study_id == study.name


def test_the_set_has_good_and_bad_inputs_of_every_kind(studies):
    good = {s.kind for s in studies if s.good}
    assert good == {"jpeg", "png8", "png16", "dicom"}
    assert {s.expected_failure for s in studies if not s.good} == {
        ("prepare", "CorruptImage"), ("validate", "InvalidMetadata"), ("prepare", "UnsupportedImage")}
    assert len([s for s in studies if not s.good]) == 4


def test_ids_are_unique_safe_and_keys_follow_the_upload_contract(studies):
    ids = [s.study_id for s in studies]
    assert len(set(ids)) == len(ids) and all(check_study_id(i) for i in ids)
    for study in studies:
        assert study.name.startswith(DEMO_PREFIX)
        assert all(key.startswith("incoming/" + study.name + ".") for key in study.keys)
        if study.kind == "dicom":
            assert study.keys == [f"incoming/{study.name}.dcm"]
        else:  # the sidecar first: the image's upload is what starts the pipeline
            assert study.keys[0].endswith(".json") and len(study.keys) == 2
            assert study.objects[0][2] == "application/json"


def test_formats_are_what_the_kind_says(studies):
    from PIL import Image

    for study in studies:
        if study.good:
            data = study.objects[-1][1]
            assert sniff(data) == {"jpeg": "jpeg", "png8": "png", "png16": "png", "dicom": "dicom"}[study.kind]
            if study.kind.startswith("png"):
                mode = Image.open(io.BytesIO(data)).mode
                assert mode == ("L" if study.kind == "png8" else "I;16"), study.name


def test_generated_studies_are_deterministic(studies):
    again = {s.name: s for s in demo_studies(include_real=False)}
    for study in studies:
        if study.name != REAL_STUDY_NAME:  # de-identification gives it fresh UIDs
            assert again[study.name].objects == study.objects


def test_the_real_radiograph_is_deidentified_and_keeps_its_pixels(studies):
    import pydicom
    from pydicom.data import get_testdata_file

    from radstream.pipeline.deid import is_identified

    real = next(s for s in studies if s.name == REAL_STUDY_NAME)
    uploaded = pydicom.dcmread(io.BytesIO(real.objects[0][1]))
    original = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm", download=False))
    assert is_identified(uploaded) == []
    assert str(original.PatientName) and str(uploaded.get("PatientName", "")) != str(original.PatientName)
    assert uploaded.PixelData == original.PixelData
    assert uploaded.ViewPosition == "PA" and uploaded.SOPInstanceUID != original.SOPInstanceUID


def test_the_traversal_sidecar_names_an_id_outside_incoming(studies):
    traversal = next(s for s in studies if s.name == "DEMO-BAD-TRAVERSAL")
    assert json.loads(traversal.objects[0][1])["study_id"] == "../DEMO-BAD-TRAVERSAL"
    assert pipeline_outcome(traversal) == ("validate", "InvalidMetadata")


def test_chest_pixels_look_like_a_chest():
    pixels = chest_pixels(256, 256, seed=3)
    assert pixels.dtype == np.uint8 and pixels.shape == (256, 256)
    lungs = pixels[80:150, 40:90].mean(), pixels[80:150, 166:216].mean()
    mediastinum = pixels[80:150, 122:134].mean()
    assert max(lungs) < mediastinum - 40  # air is dark, the spine and heart are dense
    wide = chest_pixels(128, 128, seed=3, bits=16)
    assert wide.dtype == np.uint16 and wide.max() > 255
    assert not np.array_equal(chest_pixels(64, 64, seed=1), chest_pixels(64, 64, seed=2))
    assert np.array_equal(chest_pixels(64, 64, seed=1), chest_pixels(64, 64, seed=1))


def test_damaged_cuts_or_scrambles():
    data = bytes(range(256)) * 8
    assert damaged(data, 0.25) == data[:512]
    scrambled = damaged(data, 0.25, scramble=True)
    assert len(scrambled) == len(data) and scrambled[:512] == data[:512] and scrambled != data


def test_load_studies_are_unique_per_run_and_index():
    first, second, other_run = load_study("RUN1", 0), load_study("RUN1", 1), load_study("RUN2", 0)
    assert len({first.study_id, second.study_id, other_run.study_id}) == 3
    assert first.study_id.startswith(load_id_prefix("RUN1")) and not other_run.study_id.startswith(load_id_prefix("RUN1"))
    for index in range(4):  # every image variant goes through the pipeline
        study = load_study("20240115T100000-abcd", index)
        assert check_study_id(study.study_id) and pipeline_outcome(study) is None
        assert json.loads(study.objects[0][1])["study_id"] == study.study_id
