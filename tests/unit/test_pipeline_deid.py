"""De-identification: identity gone, markers set, pixels untouched; the identity check; `radstream deid`."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from radstream.cli import app
from radstream.deid_files import deidentify_files, plan_copies
from radstream.errors import ConfigError
from radstream.pipeline.deid import DEIDENTIFICATION_METHOD, deidentify, deidentify_bytes, is_identified, require_deidentified
from radstream.pipeline.errors import IdentifiedDicom
from radstream.pipeline.readers import read_image
from tests.unit.pipeline_fixtures import CR_FILES, DEID_KEY, dataset, dicom_bytes, sample_bytes

UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
DATES = ("StudyDate", "AcquisitionDate", "InstanceCreationDate")


@pytest.fixture(scope="module")
def rg1_pair():
    data = sample_bytes("RG1_UNCR.dcm")
    return pydicom.dcmread(io.BytesIO(data)), pydicom.dcmread(io.BytesIO(deidentify_bytes(data, DEID_KEY)))


@pytest.mark.parametrize("name", [CR_FILES[0], "RG1_UNCR.dcm"])
def test_names_ids_dates_and_uids_are_replaced(name):
    original = dataset(name)
    clean = pydicom.dcmread(io.BytesIO(deidentify_bytes(sample_bytes(name), DEID_KEY)))
    assert str(original.PatientName) and str(clean.get("PatientName", "")) in ("", "ANONYMIZED")
    assert clean.get("PatientID", "") in ("", "ANONYMIZED") != original.PatientID
    assert clean.get("AccessionNumber", "") == ""
    for keyword in DATES:
        if original.get(keyword):
            assert clean.get(keyword, "") != original.get(keyword), keyword
    for keyword in UIDS:
        assert clean[keyword].value != original[keyword].value, keyword
        assert pydicom.uid.UID(clean[keyword].value).is_valid
    assert clean.file_meta.MediaStorageSOPInstanceUID == clean.SOPInstanceUID


def test_markers_are_set(rg1_pair):
    _, clean = rg1_pair
    assert clean.PatientIdentityRemoved == "YES"
    assert clean.DeidentificationMethod == DEIDENTIFICATION_METHOD and len(DEIDENTIFICATION_METHOD) <= 64
    assert [c.CodeValue for c in clean.DeidentificationMethodCodeSequence] == ["113100", "113107"]
    assert clean.LongitudinalTemporalInformationModified == "MODIFIED"


def test_other_identifiers_are_gone(rg1_pair):
    original, clean = rg1_pair
    assert original.OtherPatientIDs and "OtherPatientIDs" not in clean
    assert original.InstitutionName != clean.get("InstitutionName")
    assert str(original.ReferringPhysicianName) and not str(clean.get("ReferringPhysicianName", ""))


def test_private_tags_are_removed():
    original = dataset(CR_FILES[0])
    assert any(e.tag.is_private for e in original)
    clean = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    assert not any(e.tag.is_private for e in clean.iterall())


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG1_J2KR.dcm"])
def test_pixel_data_and_transfer_syntax_are_identical(name):
    data = sample_bytes(name)
    original = pydicom.dcmread(io.BytesIO(data))
    clean = pydicom.dcmread(io.BytesIO(deidentify_bytes(data, DEID_KEY)))
    assert clean.PixelData == original.PixelData
    assert clean.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID


def test_the_image_reads_the_same_after_deidentification():
    data = sample_bytes(CR_FILES[0])
    before, after = read_image(data), read_image(deidentify_bytes(data, DEID_KEY))
    np.testing.assert_array_equal(after.pixels, before.pixels)
    assert after.tags["ViewPosition"] == "LL"  # the view survives the profile


def test_uids_are_consistent_across_the_files_of_a_study():
    first, second = (deidentify(dataset(n), DEID_KEY) for n in CR_FILES[:2])
    assert dataset(CR_FILES[0]).StudyInstanceUID == dataset(CR_FILES[1]).StudyInstanceUID
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID


def test_deidentification_writes_nothing_to_stdout(capsys):
    deidentify_bytes(sample_bytes(CR_FILES[2]), DEID_KEY)
    assert capsys.readouterr().out == ""


# --- the identity check --------------------------------------------------------------------------


def test_original_files_are_identified():
    reasons = is_identified(dataset("RG1_UNCR.dcm"))
    assert {"PatientName is present", "PatientID is present", "PatientBirthDate is present"} <= set(reasons)


@pytest.mark.parametrize("name", [*CR_FILES, "RG1_UNCR.dcm"])
def test_deidentified_files_pass(name):
    assert is_identified(deidentify(dataset(name), DEID_KEY)) == []


def test_a_false_declaration_is_caught():
    ds = dataset(CR_FILES[0])
    assert ds.PatientIdentityRemoved == "YES"  # this test file claims so, yet carries a name
    assert "PatientName is present" in is_identified(ds)


def test_identifiers_inside_sequences_are_found():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    item = pydicom.Dataset()
    item.AccessionNumber = "A123"
    ds.AnatomicRegionSequence = [item]  # a sequence the profile keeps
    assert is_identified(ds) == ["AccessionNumber is present"]


def test_burned_in_annotation_is_refused():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(IdentifiedDicom, match="Burned In Annotation") as caught:
        require_deidentified(ds)
    assert caught.value.error_type == "IdentifiedDicom" and caught.value.stage == "validate"


def test_require_deidentified_passes_clean_data():
    require_deidentified(deidentify(dataset(CR_FILES[0]), DEID_KEY))


# --- `radstream deid` ----------------------------------------------------------------------------


@pytest.fixture
def studies(tmp_path):
    folder = tmp_path / "studies"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(sample_bytes(CR_FILES[0]))
    (folder / "sub" / "b.dcm").write_bytes(sample_bytes(CR_FILES[1]))
    (folder / "notes.txt").write_text("not DICOM")
    return folder


def test_folder_is_copied_with_its_layout(studies, tmp_path):
    out = tmp_path / "clean"
    result = deidentify_files([studies], out, DEID_KEY)
    assert result["ok"] and result["counts"] == {"deidentified": 2, "skipped": 1, "failed": 0}
    copy = pydicom.dcmread(out / "studies" / "sub" / "b.dcm")
    assert copy.PatientIdentityRemoved == "YES" and is_identified(copy) == []
    assert pydicom.dcmread(studies / "sub" / "b.dcm").PatientName == "Doe^Archibald"  # original untouched


def test_named_non_dicom_file_fails(studies, tmp_path):
    result = deidentify_files([studies / "notes.txt", studies / "a.dcm"], tmp_path / "clean", DEID_KEY)
    assert not result["ok"]
    assert [e["status"] for e in result["files"]] == ["failed", "deidentified"]


@pytest.mark.parametrize("cut", [200, 1000, -100])  # in the header, in the dataset, in the pixels
def test_truncated_dicom_fails_without_stopping_the_batch(studies, tmp_path, cut):
    data = sample_bytes(CR_FILES[2])
    (studies / "cut.dcm").write_bytes(data[:cut])
    result = deidentify_files([studies], tmp_path / "clean", DEID_KEY)
    assert result["counts"]["deidentified"] == 2 and result["counts"]["failed"] == 1
    assert not (tmp_path / "clean" / "studies" / "cut.dcm").exists()


def test_a_copy_the_post_check_flags_is_a_failure_and_is_not_written(tmp_path):
    ds = dataset(CR_FILES[0])
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "burned.dcm").write_bytes(dicom_bytes(ds))
    result = deidentify_files([tmp_path / "burned.dcm"], tmp_path / "clean", DEID_KEY)
    [entry] = result["files"]
    assert (entry["status"], entry["output"]) == ("failed", None) and "Burned In Annotation" in entry["error"]
    assert not result["ok"] and not (tmp_path / "clean").exists()


def test_a_missing_burned_in_annotation_on_a_radiograph_is_a_warning(tmp_path):
    (tmp_path / "cr.dcm").write_bytes(sample_bytes(CR_FILES[0]))
    [entry] = deidentify_files([tmp_path / "cr.dcm"], tmp_path / "clean", DEID_KEY)["files"]
    assert entry["status"] == "deidentified" and any("Burned In Annotation" in w for w in entry["warnings"])


def test_cli_refuses_a_flagged_copy_with_exit_1(tmp_path, key_file):
    ds = dataset(CR_FILES[0])
    ds.BurnedInAnnotation = "YES"
    (tmp_path / "burned.dcm").write_bytes(dicom_bytes(ds))
    result = CliRunner().invoke(app, ["deid", str(tmp_path / "burned.dcm"), "--out", str(tmp_path / "clean"),
                                      "--key-file", str(key_file), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["counts"] == {"deidentified": 0, "skipped": 0, "failed": 1}
    assert not (tmp_path / "clean" / "burned.dcm").exists()


def test_colliding_destinations_are_refused(tmp_path):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.dcm").write_bytes(b"")
    with pytest.raises(ConfigError, match="both be written"):
        plan_copies([tmp_path / "x" / "same.dcm", tmp_path / "y" / "same.dcm"], tmp_path / "out")


def test_output_over_input_is_refused(studies):
    with pytest.raises(ConfigError, match="is an input"):
        plan_copies([studies / "a.dcm"], studies)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "deid.key"
    path.write_bytes(DEID_KEY)
    return path


def test_cli_prints_one_json_object(studies, tmp_path, key_file):
    result = CliRunner().invoke(app, ["deid", str(studies / "a.dcm"), "--out", str(tmp_path / "clean"),
                                      "--key-file", str(key_file), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["ok"] and payload["files"][0]["output"] == str((tmp_path / "clean" / "a.dcm").resolve())


def test_cli_exits_1_when_a_file_fails(studies, tmp_path, key_file):
    result = CliRunner().invoke(app, ["deid", str(studies / "notes.txt"), "--out", str(tmp_path / "clean"),
                                      "--key-file", str(key_file), "--json"])
    assert result.exit_code == 1 and json.loads(result.stdout)["counts"]["failed"] == 1

