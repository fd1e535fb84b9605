"""Stable pseudonyms: the same study and key give the same UIDs, date shift and study id on every run;
another key gives others; the UIDs are valid DICOM UIDs; `radstream deid --key-file`."""

from __future__ import annotations

import io
import json
import re
from datetime import date

import pydicom
import pytest
from typer.testing import CliRunner

from radstream.cli import app
from radstream.deid_files import read_key_file
from radstream.errors import ConfigError
from radstream.pipeline.deid import deidentify, deidentify_bytes, dicom_study_id, pseudonym_uid
from radstream.pipeline.study_ids import check_study_id
from tests.unit.pipeline_fixtures import CR_FILES, DEID_KEY, dataset, sample_bytes

OTHER_KEY = bytes(range(100, 132))
UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def clean(name: str, key: bytes = DEID_KEY) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(deidentify_bytes(sample_bytes(name), key)))


def _day(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_the_same_study_and_key_give_the_same_pseudonyms():
    first, second = clean("RG1_UNCR.dcm"), clean("RG1_UNCR.dcm")
    for keyword in (*UIDS, "StudyDate", "ContentDate"):
        if keyword in first:
            assert first[keyword].value == second[keyword].value, keyword
    assert dicom_study_id(first.StudyInstanceUID) == dicom_study_id(second.StudyInstanceUID)


def test_another_key_gives_other_pseudonyms():
    mine, theirs = clean("RG1_UNCR.dcm"), clean("RG1_UNCR.dcm", OTHER_KEY)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert mine[keyword].value != theirs[keyword].value, keyword
    assert mine.StudyDate != theirs.StudyDate
    assert dicom_study_id(mine.StudyInstanceUID) != dicom_study_id(theirs.StudyInstanceUID)


@pytest.mark.parametrize("name", [*CR_FILES, "RG1_UNCR.dcm"])
def test_pseudonym_uids_are_valid_dicom_uids(name):
    ds = clean(name)
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.keyword in UIDS + ("ReferencedSOPInstanceUID", "MediaStorageSOPInstanceUID"):
            assert len(elem.value) <= 64 and _UID.fullmatch(elem.value), (elem.keyword, elem.value)
    assert pydicom.uid.UID(ds.file_meta.MediaStorageSOPInstanceUID) == ds.SOPInstanceUID


def test_a_pseudonym_uid_has_no_leading_zero_even_for_a_small_hash():
    assert all(_UID.fullmatch(pseudonym_uid(str(n), DEID_KEY)) for n in range(500))


def test_dates_move_together_so_intervals_survive():
    original = dataset("RG1_UNCR.dcm")
    ds = clean("RG1_UNCR.dcm")
    pairs = [(k, original[k].value, ds[k].value) for k in ("StudyDate", "SeriesDate", "ContentDate", "InstanceCreationDate")
             if original.get(k)]
    assert len(pairs) >= 2
    shifts = {(_day(before) - _day(after)).days for _, before, after in pairs}
    assert len(shifts) == 1 and 1 <= shifts.pop() <= 3650
    assert ds.StudyTime == original.StudyTime  # whole days: the time of day is kept


def test_a_study_without_a_uid_gets_dummy_dates():
    ds = dataset(CR_FILES[0])
    del ds.StudyInstanceUID
    deidentify(ds, DEID_KEY)
    assert ds.StudyDate == "19000101" and ds.LongitudinalTemporalInformationModified == "REMOVED"


def test_the_study_id_passes_the_pipeline_check_and_ignores_the_file_name():
    study_uid = clean(CR_FILES[0]).StudyInstanceUID
    assert check_study_id(dicom_study_id(study_uid)) == dicom_study_id(study_uid)
    assert dicom_study_id(study_uid) != dicom_study_id(study_uid + "1")


@pytest.mark.parametrize("key", [b"", b"short", b"x" * 31])
def test_a_short_key_is_refused(key):
    with pytest.raises(ValueError, match="at least 32"):
        deidentify(dataset(CR_FILES[0]), key)


# --- the key file --------------------------------------------------------------------------------


def test_a_missing_or_short_key_file_is_a_clear_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the key file") as missing:
        read_key_file(tmp_path / "absent.key")
    assert "/dev/urandom" in missing.value.hint
    (tmp_path / "short.key").write_bytes(b"x" * 16)
    with pytest.raises(ConfigError, match="holds 16 bytes; at least 32"):
        read_key_file(tmp_path / "short.key")


def test_cli_deid_with_a_key_file_gives_the_same_uids_on_every_run(tmp_path):
    (tmp_path / "deid.key").write_bytes(DEID_KEY)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.dcm").write_bytes(sample_bytes(CR_FILES[0]))
    uids = []
    for run in ("one", "two"):
        result = CliRunner().invoke(app, ["deid", str(tmp_path / "in" / "a.dcm"), "--out", str(tmp_path / run),
                                          "--key-file", str(tmp_path / "deid.key"), "--json"])
        assert result.exit_code == 0, result.output
        uids.append(pydicom.dcmread(tmp_path / run / "a.dcm").SOPInstanceUID)
    assert uids[0] == uids[1] == clean(CR_FILES[0]).SOPInstanceUID


def test_cli_deid_without_a_usable_key_file_exits_2(tmp_path):
    (tmp_path / "a.dcm").write_bytes(sample_bytes(CR_FILES[0]))
    result = CliRunner().invoke(app, ["deid", str(tmp_path / "a.dcm"), "--out", str(tmp_path / "out"),
                                      "--key-file", str(tmp_path / "nope.key"), "--json"])
    assert result.exit_code == 2 and "key file" in json.loads(result.stdout)["error"]
    assert not (tmp_path / "out").exists()
