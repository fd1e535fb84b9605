"""The sidecar schema and study ids: what is accepted, and that every refusal names its field."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import datetime, timezone

import pytest

from radstream.pipeline.errors import InvalidMetadata
from radstream.pipeline.metadata import SIDECAR_MAX_BYTES, View, metadata_from_dicom, parse_sidecar, validate_metadata
from radstream.pipeline.study_ids import STUDY_ID_MAX_LENGTH, is_valid_study_id, key_sha256, key_study_id

VALID = {"study_id": "TEST-001", "view": "PA", "timestamp": "2024-01-15T10:00:00Z", "burned_in_annotation": False}


def sidecar(**changes) -> bytes:
    fields = {**VALID, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def refusal(data: bytes) -> str:
    with pytest.raises(InvalidMetadata) as caught:
        parse_sidecar(data)
    assert caught.value.stage == "validate" and caught.value.error_type == "InvalidMetadata"
    return caught.value.reason


def test_minimal_sidecar():
    meta = parse_sidecar(sidecar())
    assert meta.study_id == "TEST-001" and meta.view is View.PA
    assert meta.timestamp == datetime(2024, 1, 15, 10, tzinfo=timezone.utc)
    assert meta.to_json_dict() == VALID


def test_optional_non_identifying_fields():
    meta = parse_sidecar(sidecar(age_band="40-49", sex="F", site_code="SITE_07", modality="DX"))
    assert meta.to_json_dict() == {**VALID, "age_band": "40-49", "sex": "F", "site_code": "SITE_07", "modality": "DX"}


def test_view_is_case_insensitive_and_lateral_is_known():
    assert parse_sidecar(sidecar(view=" lateral ")).view is View.LATERAL


@pytest.mark.parametrize(
    "timestamp, expected",
    [
        ("2024-01-15T10:00:00+02:00", datetime(2024, 1, 15, 8, tzinfo=timezone.utc)),
        ("2024-01-15T10:00:00", datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),  # no offset: UTC
        ("2024-01-15T10:00:00.250Z", datetime(2024, 1, 15, 10, 0, 0, 250000, tzinfo=timezone.utc)),
    ],
)
def test_timestamps(timestamp, expected):
    assert parse_sidecar(sidecar(timestamp=timestamp)).timestamp == expected


@pytest.mark.parametrize("timestamp", ["yesterday", "2024-13-01T00:00:00Z", "2024-01-15", 1705312800, None, "2" * 50])
def test_bad_timestamp_names_the_field(timestamp):
    assert "field 'timestamp'" in refusal(sidecar(timestamp=timestamp))


@pytest.mark.parametrize(
    "study_id",
    ["../etc", "a/b", "a\\b", "a..b", ".hidden", "..", "-rf", "", "x" * (STUDY_ID_MAX_LENGTH + 1),
     "TEST\u2215001", "ТЕСТ-001", "TEST 001", "TEST-001\n", 42, None],
)
def test_unsafe_study_ids_are_refused(study_id):
    message = refusal(sidecar(study_id=study_id))
    assert "field 'study_id'" in message
    assert not is_valid_study_id(study_id)


@pytest.mark.parametrize("study_id", ["TEST-001", "a", "1.2.840.10008", "x_y-z.1", "x" * STUDY_ID_MAX_LENGTH])
def test_safe_study_ids(study_id):
    assert parse_sidecar(sidecar(study_id=study_id)).study_id == study_id


def test_unknown_field_is_named():
    message = refusal(sidecar(patient_name="Doe^John"))
    assert "field 'patient_name'" in message and "Extra inputs" in message
    assert "Doe" not in message  # offending values are never echoed


@pytest.mark.parametrize("field, value", [("site_code", "S" * 17), ("age_band", "40-49-59"), ("modality", "CRXYZ")])
def test_oversized_field_is_named(field, value):
    assert f"field '{field}'" in refusal(sidecar(**{field: value}))


@pytest.mark.parametrize("field", ["study_id", "view", "timestamp"])
def test_missing_required_field_is_named(field):
    assert f"field '{field}'" in refusal(sidecar(**{field: ...}))


@pytest.mark.parametrize("field, value", [("view", 1), ("view", "OBLIQUE"), ("sex", "female"), ("age_band", 45)])
def test_wrong_type_or_value_is_named(field, value):
    assert f"field '{field}'" in refusal(sidecar(**{field: value}))


@pytest.mark.parametrize("band", ["90+", "0-9", "80-89"])
def test_age_bands_accepted(band):
    assert parse_sidecar(sidecar(age_band=band)).age_band == band


@pytest.mark.parametrize("band", ["91+", "50-40", "85-94", "47-47-"])
def test_identifying_or_malformed_age_bands_refused(band):
    assert "field 'age_band'" in refusal(sidecar(age_band=band))


def test_every_problem_is_reported_at_once():
    message = refusal(sidecar(study_id="../x", view="UP", extra=1))
    assert all(f"field '{f}'" in message for f in ("study_id", "view", "extra"))


def test_sidecar_size_limit():
    data = sidecar(site_code="A" * (SIDECAR_MAX_BYTES))
    assert "limit is 4096" in refusal(data)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\xff\xfe{}", "UTF-8"),
        (b"{not json", "not valid JSON"),
        (b'["TEST-001"]', "JSON object"),
        (b'{"study_id": "TEST-001", "study_id": "../x", "view": "PA", "timestamp": "2024-01-15T10:00:00Z"}', "appears twice"),
    ],
)
def test_malformed_sidecars(data, words):
    assert words in refusal(data)


def test_validate_metadata_accepts_a_step_input_mapping():
    assert validate_metadata(dict(VALID)).study_id == "TEST-001"
    with pytest.raises(InvalidMetadata):
        validate_metadata(["not", "a", "mapping"])  # type: ignore[arg-type]


# --- ids for studies without one, and key hashes ----------------------------------------------------


def test_a_study_without_an_id_gets_one_from_a_hash_of_its_key_never_its_text():
    key = "incoming/SMITH_JOHN_MRN12345.png"
    derived = key_study_id(key)
    assert is_valid_study_id(derived) and derived == key_study_id(key)  # deterministic
    assert derived == "KEY-" + key_sha256(key)[:24]
    assert "SMITH" not in derived and "12345" not in derived


def test_keys_that_differ_in_any_way_get_different_ids():
    assert key_study_id("incoming/a b.png") != key_study_id("incoming/a&b.png")
    assert key_study_id("incoming/x.png") != key_study_id("incoming/X.png")


def test_key_hash_is_the_sha256_of_the_key():
    assert key_sha256("incoming/x.png") == hashlib.sha256(b"incoming/x.png").hexdigest()


def test_derived_ids_are_always_safe():
    rng = random.Random(5)
    alphabet = "aZ09._-/\\ \u2215\u0430\u00e9%\x00\n"
    for _ in range(2000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 90)))
        assert is_valid_study_id(key_study_id(key)), key


# --- metadata from DICOM tags ----------------------------------------------------------------------

RECEIVED = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_metadata_from_dicom_tags():
    tags = {"ViewPosition": "LL", "Modality": "CR", "PatientSex": "M", "PatientAge": "047Y",
            "StudyDate": "20010101", "StudyTime": "093000.5"}
    meta = metadata_from_dicom(tags, "DCM-1", RECEIVED)
    assert meta.to_json_dict() == {
        "study_id": "DCM-1", "view": "LL", "timestamp": "2001-01-01T09:30:00Z",
        "age_band": "40-49", "sex": "M", "modality": "CR",
    }


@pytest.mark.parametrize("value", [..., None, True, "false", 0])
def test_a_sidecar_must_declare_no_burned_in_annotation(value):
    reason = refusal(sidecar(burned_in_annotation=value))
    assert "field 'burned_in_annotation'" in reason


def test_a_sidecar_declaring_no_burned_in_annotation_keeps_the_declaration():
    assert parse_sidecar(sidecar()).to_json_dict()["burned_in_annotation"] is False


def test_metadata_from_dicom_with_shifted_dates_uses_received_time():
    tags = {"ViewPosition": "PA", "StudyDate": "20190304", "StudyTime": "101500",
            "LongitudinalTemporalInformationModified": "MODIFIED"}
    assert metadata_from_dicom(tags, "DCM-1", RECEIVED).timestamp == RECEIVED


def test_the_dummy_date_is_not_a_time():
    tags = {"ViewPosition": "PA", "StudyDate": "19000101", "StudyTime": "000000"}
    assert metadata_from_dicom(tags, "DCM-1", RECEIVED).timestamp == RECEIVED


def test_metadata_from_deidentified_dicom_uses_received_time():
    tags = {"ViewPosition": "PA", "StudyDate": "00010101", "StudyTime": "000000.00", "PatientAge": "", "PatientSex": ""}
    meta = metadata_from_dicom(tags, "DCM-1", RECEIVED)
    assert meta.timestamp == RECEIVED and meta.sex is None and meta.age_band is None


def test_acquisition_date_wins_over_study_date():
    tags = {"ViewPosition": "AP", "AcquisitionDate": "20200202", "AcquisitionTime": "1015", "StudyDate": "20200101"}
    assert metadata_from_dicom(tags, "DCM-1", RECEIVED).timestamp == datetime(2020, 2, 2, 10, 15, tzinfo=timezone.utc)


def test_very_old_patients_get_the_open_band():
    meta = metadata_from_dicom({"ViewPosition": "PA", "PatientAge": "093Y"}, "DCM-1", RECEIVED)
    assert meta.age_band == "90+"


def test_dicom_without_view_position_is_refused_with_advice():
    with pytest.raises(InvalidMetadata, match="View Position"):
        metadata_from_dicom({"ViewPosition": ""}, "DCM-1", RECEIVED)
