"""De-identification of DICOM studies and the check that guards uploads.

`deidentify` applies the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile with
the `dicom-anonymizer` package, which does not set the attributes that declare the result
de-identified; they are set here. Pixel data is never touched: burned-in text cannot be removed by
the basic profile, so `is_identified` refuses images flagged with it.
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import TYPE_CHECKING

from radstream.pipeline.errors import IdentifiedDicom

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement

# dicom-anonymizer's action tables; the newest the package ships (needs dicom-anonymizer >= 2.1).
PROFILE_TABLES = "dicomfields_2026c"
# De-identification Method is an LO: at most 64 characters.
DEIDENTIFICATION_METHOD = f"DICOM PS3.15 Basic Profile, dicom-anonymizer {PROFILE_TABLES}"
# CID 7050 code for the basic profile, recorded alongside the free-text method.
_BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# Attributes that name or point to the patient. After de-identification they are absent, empty or
# one of the profile's dummy values.
_DIRECT_IDENTIFIERS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "OtherPatientIDs",
    "OtherPatientNames",
    "OtherPatientIDsSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AccessionNumber",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
)
_DUMMY_VALUES = {"", "ANONYMIZED", "00010101"}


def deidentify(ds: Dataset) -> Dataset:
    """De-identify `ds` in place (and return it): basic profile, private tags removed, UIDs replaced
    consistently within this process, markers (0012,0062)/(0012,0063)/(0012,0064) set."""
    from dicomanonymizer.simpledicomanonymizer import anonymize_dataset, initialize_actions
    from pydicom import Dataset as PydicomDataset

    # The library reports problems with print(); keep stdout clean for --json.
    with contextlib.redirect_stdout(sys.stderr):
        anonymize_dataset(ds, base_rules_gen=lambda: initialize_actions(PROFILE_TABLES), delete_private_tags=True)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    code = PydicomDataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = [code]
    if hasattr(ds, "file_meta") and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def deidentify_bytes(data: bytes) -> bytes:
    """A DICOM file's bytes, de-identified; the transfer syntax and pixel data are kept as they are.
    Raises ValueError for a file that ends early rather than writing a broken copy."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data))
    _check_complete(ds)
    deidentify(ds)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _check_complete(ds: Dataset) -> None:
    """pydicom reads a truncated file without complaint; notice the missing or short pixel data."""
    from pydicom.pixels.utils import get_expected_length

    if "PixelData" not in ds:
        raise ValueError("the DICOM has no Pixel Data (truncated, or not an image)")
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and not syntax.is_encapsulated and len(ds.PixelData) < get_expected_length(ds):
        raise ValueError(f"the DICOM pixel data is {len(ds.PixelData)} bytes, {get_expected_length(ds)} expected (truncated?)")


def is_identified(ds: Dataset) -> list[str]:
    """Reasons to believe `ds` still identifies the patient; empty when it looks de-identified.

    A safety net before upload, not a certification: it checks the declaration, the direct
    identifiers (at any depth), private attributes and burned-in annotation."""
    reasons = []
    if str(ds.get("PatientIdentityRemoved", "")).upper() != "YES":
        reasons.append("Patient Identity Removed (0012,0062) is not YES")
    found = sorted(
        {
            elem.keyword
            for elem in ds.iterall()
            if elem.keyword in _DIRECT_IDENTIFIERS and _carries_value(elem)
        }
    )
    reasons.extend(f"{keyword} is present" for keyword in found)
    if any(elem.tag.is_private for elem in ds.iterall()):
        reasons.append("private attributes are present and may hold identity")
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        reasons.append("Burned In Annotation (0028,0301) is YES: identity may be written in the pixels")
    return reasons


def require_deidentified(ds: Dataset) -> None:
    """Raise IdentifiedDicom naming every reason `is_identified` finds."""
    if reasons := is_identified(ds):
        raise IdentifiedDicom("the DICOM still carries identity: " + "; ".join(reasons))


def _carries_value(elem: DataElement) -> bool:
    from pydicom.multival import MultiValue

    if elem.VR == "SQ":
        return len(elem.value) > 0
    values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
    return any(str(v).strip().upper() not in _DUMMY_VALUES for v in values if v is not None)
