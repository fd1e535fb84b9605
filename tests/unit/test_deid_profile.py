"""The PS3.15 Annex E table drives both sides: every attribute it removes or blanks is gone after
`deidentify`, and the gate refuses a file in which any of them carries a value."""

from __future__ import annotations

import pydicom
import pytest
from pydicom.datadict import dictionary_VR, tag_for_keyword

from radstream.pipeline.deid import PROFILE, Action, check_identity, deidentify, is_identified
from tests.unit.pipeline_fixtures import CR_FILES, DEID_KEY, dataset

# The kinds of attribute the officer listed; each must be in the table, with an action that hides it.
REQUIRED = (
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StudyTime", "AcquisitionDateTime",
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "ReferringPhysicianName",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "ImageComments",
    "StudyDescription", "SeriesDescription", "DeviceSerialNumber", "StationName", "AccessionNumber",
    "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers", "PatientBirthName",
    "PatientMotherBirthName", "PatientName", "PatientID", "PatientBirthDate", "FrameOfReferenceUID",
)
HIDDEN = (Action.REMOVE, Action.EMPTY, Action.DUMMY)
_SAMPLE_VALUES = {"DA": "20240115", "TM": "101500", "DT": "20240115101500", "PN": "Doe^Jane", "IS": "7", "DS": "1.5",
                  "AS": "047Y", "US": 7, "UI": "1.2.3.4"}


def test_every_keyword_in_the_table_is_a_dicom_attribute():
    unknown = [k for k in PROFILE if tag_for_keyword(k) is None and k not in ("OverlayData", "OverlayComments", "CurveData")]
    assert unknown == []


def test_the_table_covers_the_listed_kinds_of_identifier():
    assert [k for k in REQUIRED if k not in PROFILE] == []


def test_uids_get_pseudonyms_and_dates_a_shift():
    for keyword, action in PROFILE.items():
        vr = dictionary_VR(tag_for_keyword(keyword)) if tag_for_keyword(keyword) else None
        if action is Action.PSEUDONYM:
            assert vr == "UI", keyword
        if action is Action.SHIFT:
            assert vr in ("DA", "TM", "DT"), keyword


def _settable() -> list[str]:
    """Keywords of the hidden kinds that can be given a plain value in a test."""
    found = []
    for keyword, action in PROFILE.items():
        tag = tag_for_keyword(keyword)
        if action in HIDDEN and tag is not None and dictionary_VR(tag) in (*_SAMPLE_VALUES, "LO", "SH", "LT", "ST", "CS"):
            found.append(keyword)
    return found


@pytest.mark.parametrize("keyword", _settable())
def test_the_gate_refuses_any_hidden_attribute_with_a_value_and_deidentify_hides_it(keyword):
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    value = _SAMPLE_VALUES.get(dictionary_VR(tag_for_keyword(keyword)), "SOMEONE")
    setattr(ds, keyword, value)
    assert f"{keyword} is present" in is_identified(ds)
    assert is_identified(deidentify(ds, DEID_KEY)) == []


def test_an_unshifted_date_is_refused_and_a_shifted_one_accepted():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED" and is_identified(ds) == []
    ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    assert "StudyDate is present" in is_identified(ds)


def test_the_self_declaration_is_not_enough():
    ds = dataset("RG1_UNCR.dcm")
    ds.PatientIdentityRemoved = "YES"
    assert {"InstitutionName is present", "StationName is present", "DeviceSerialNumber is present"} <= set(is_identified(ds))


def test_private_attributes_are_refused():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    ds.private_block(0x0009, "SOME VENDOR", create=True).add_new(0x01, "LO", "Doe^Jane")
    assert "private attributes are present and may hold identity" in is_identified(ds)


def test_overlay_data_is_removed_and_refused():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    ds.add_new(0x60023000, "OW", b"\x01\x00" * 8)
    assert "Overlay Data is present" in is_identified(ds)
    assert 0x60023000 not in deidentify(ds, DEID_KEY)


@pytest.mark.parametrize(("modality", "warned"), [("CR", True), ("DX", True), ("MG", True), ("CT", False)])
def test_a_missing_burned_in_annotation_on_a_radiograph_is_a_warning_not_a_refusal(modality, warned):
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    ds.Modality = modality
    check = check_identity(ds)
    assert check.reasons == [] and bool(check.warnings) is warned
    ds.BurnedInAnnotation = "NO"
    assert check_identity(ds).warnings == []


def test_a_declared_burned_in_annotation_is_refused():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    ds.BurnedInAnnotation = "YES"
    assert any("Burned In Annotation" in r for r in is_identified(ds))


def test_deidentified_output_keeps_what_the_pipeline_reads():
    ds = deidentify(dataset(CR_FILES[0]), DEID_KEY)
    assert ds.ViewPosition == "LL" and ds.Modality == "CR" and isinstance(ds, pydicom.Dataset)
