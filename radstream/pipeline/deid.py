"""De-identification of DICOM studies and the check that guards uploads.

One table, `PROFILE`, holds the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile
as this project applies it: `deidentify` acts on it and `check_identity` verifies the result against
it, so the two cannot drift apart. Two profile options are applied as well: UIDs are replaced by
keyed pseudonyms (HMAC-SHA-256 with the deployment's secret key), stable across runs, and dates are
shifted by a per-study number of days derived from the same key (Retain Longitudinal Temporal
Information with Modified Dates), so intervals within a study survive.

Pixel data is never touched: burned-in text cannot be removed by the basic profile, so the check
refuses images flagged with it and warns when a radiograph does not say.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from radstream.pipeline.errors import IdentifiedDicom

if TYPE_CHECKING:
    from pydicom import Dataset
    from pydicom.dataelem import DataElement


class Action(str, Enum):
    """What the profile does to an attribute (the letters of PS3.15 Table E.1-1, plus the option's
    date shift)."""

    REMOVE = "X"
    EMPTY = "Z"
    DUMMY = "D"
    PSEUDONYM = "U"
    SHIFT = "shift"  # dates moved by the study's offset; times kept, since the shift is in whole days


_X, _Z, _D, _U, _S = Action.REMOVE, Action.EMPTY, Action.DUMMY, Action.PSEUDONYM, Action.SHIFT

# The profile, by pydicom keyword. Attributes absent from it are kept (the profile's "K").
PROFILE: dict[str, Action] = {
    # -- patient --------------------------------------------------------------------------------
    **dict.fromkeys(("PatientName", "PatientID", "PatientBirthDate", "PatientSex"), _Z),
    **dict.fromkeys((
        "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence", "PatientBirthTime", "PatientBirthName",
        "PatientMotherBirthName", "OtherPatientIDs", "OtherPatientNames", "OtherPatientIDsSequence",
        "PatientAddress", "PatientTelephoneNumbers", "PatientTelecomInformation", "PatientAge", "PatientSize",
        "PatientWeight", "PatientInsurancePlanCodeSequence", "PatientPrimaryLanguageCodeSequence",
        "PatientReligiousPreference", "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
        "MedicalAlerts", "Allergies", "SmokingStatus", "PregnancyStatus", "LastMenstrualDate", "MilitaryRank",
        "BranchOfService", "MedicalRecordLocator", "CountryOfResidence", "RegionOfResidence", "ResponsiblePerson",
        "ResponsiblePersonRole", "ResponsibleOrganization", "PatientState", "PatientTransportArrangements",
        "SpecialNeeds", "PatientBirthDateInAlternativeCalendar", "PatientDeathDateInAlternativeCalendar",
        "PatientAlternativeCalendar", "ReferencedPatientSequence", "ReferencedPatientPhotoSequence",
        "PatientInstitutionResidence", "CurrentPatientLocation", "PersonAddress", "PersonTelephoneNumbers",
        "PersonTelecomInformation", "AdmissionID", "IssuerOfAdmissionIDSequence", "AdmittingDiagnosesDescription",
        "AdmittingDiagnosesCodeSequence", "AdmittingDate", "AdmittingTime", "DischargeDiagnosisDescription",
        "ServiceEpisodeID", "ServiceEpisodeDescription", "IssuerOfServiceEpisodeIDSequence", "VisitComments",
        "InsurancePlanIdentification",
    ), _X),
    **dict.fromkeys(("PersonName", "VerifyingObserverName"), _D),
    # -- study, request and procedure step ----------------------------------------------------------
    **dict.fromkeys(("StudyID", "AccessionNumber", "ReferringPhysicianName", "ContentCreatorName",
                     "VerifyingObserverIdentificationCodeSequence"), _Z),
    **dict.fromkeys((
        "IssuerOfAccessionNumberSequence", "StudyDescription", "ReferringPhysicianAddress",
        "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence",
        "ConsultingPhysicianName", "ConsultingPhysicianIdentificationSequence", "PhysiciansOfRecord",
        "PhysiciansOfRecordIdentificationSequence", "NameOfPhysiciansReadingStudy",
        "PhysiciansReadingStudyIdentificationSequence", "RequestingPhysician", "RequestingService",
        "ReasonForStudy", "RequestedProcedureDescription", "RequestedProcedureID", "ReasonForTheRequestedProcedure",
        "RequestedProcedureComments", "RequestedProcedureLocation", "ImagingServiceRequestComments", "StudyComments",
        "RequestAttributesSequence", "ReferencedStudySequence", "StudyIDIssuer",
        "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest", "OrderEnteredBy",
        "OrderEntererLocation", "OrderCallbackPhoneNumber", "OrderCallbackTelecomInformation",
        "ScheduledPerformingPhysicianName", "ScheduledPerformingPhysicianIdentificationSequence",
        "ScheduledProcedureStepDescription", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
        "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime", "ScheduledStationName",
        "ScheduledStationAETitle", "ScheduledProcedureStepLocation", "PreMedication",
        "ScheduledPatientInstitutionResidence", "PerformedProcedureStepDescription", "PerformedProcedureStepID",
        "PerformedStationName", "PerformedStationAETitle", "PerformedLocation",
        "CommentsOnThePerformedProcedureStep", "ReferencedPerformedProcedureStepSequence",
        "ActualHumanPerformersSequence", "HumanPerformerName", "HumanPerformerOrganization",
        "AuthorObserverSequence", "ParticipantSequence", "ContentCreatorIdentificationCodeSequence",
        "VerifyingOrganization", "DistributionName", "DistributionAddress", "IntendedRecipientsOfResultsIdentificationSequence",
        "InterpretationRecorder", "InterpretationTranscriber", "InterpretationText", "InterpretationAuthor",
        "InterpretationApproverSequence", "PhysicianApprovingInterpretation", "ResultsDistributionListSequence",
        "ResultsIDIssuer", "InterpretationIDIssuer", "ReviewerName", "ProtocolName",
    ), _X),
    # -- series, equipment and operators ----------------------------------------------------------
    **dict.fromkeys((
        "SeriesDescription", "PerformingPhysicianName", "PerformingPhysicianIdentificationSequence",
        "OperatorsName", "OperatorIdentificationSequence", "InstitutionName", "InstitutionAddress",
        "InstitutionalDepartmentName", "InstitutionCodeSequence", "InstitutionalDepartmentTypeCodeSequence",
        "StationName", "DeviceSerialNumber", "DeviceDescription", "DetectorID", "PlateID", "GantryID",
        "CassetteID", "GeneratorID", "SourceSerialNumber", "ModifyingDeviceID", "ModifyingDeviceManufacturer",
        "ScheduledStudyLocation", "ScheduledStudyLocationAETitle", "UniqueDeviceIdentifier",
        "ManufacturerDeviceClassUID",
    ), _X),
    # -- image: free text, references, overlays, signatures ------------------------------------------
    **dict.fromkeys((
        "ImageComments", "DerivationDescription", "FrameComments", "AcquisitionComments",
        "AcquisitionDeviceProcessingDescription", "ContributionDescription", "ReferencedImageSequence",
        "SourceImageSequence", "IconImageSequence", "OverlayData", "OverlayComments", "CurveData", "TextString",
        "TextComments", "TextValue", "ContentSequence", "GraphicAnnotationSequence", "ImagePresentationComments",
        "DigitalSignaturesSequence", "MACParametersSequence", "EncryptedAttributesSequence",
        "OriginalAttributesSequence", "ModifiedAttributesSequence", "DataSetTrailingPadding",
        "TimezoneOffsetFromUTC", "Arbitrary", "LabelText", "BarcodeValue",
        "SpecimenAccessionNumber", "ContainerIdentifier", "ContainerDescription", "SlideIdentifier",
        "ReferencedDigitalSignatureSequence", "ReferencedSOPInstanceMACSequence",
    ), _X),
    # -- dates and times: shifted with the study's offset ------------------------------------------
    **dict.fromkeys((
        "StudyDate", "StudyTime", "SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
        "AcquisitionDateTime", "ContentDate", "ContentTime", "InstanceCreationDate", "InstanceCreationTime",
        "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime", "PerformedProcedureStepEndDate",
        "PerformedProcedureStepEndTime", "OverlayDate", "OverlayTime", "CurveDate", "CurveTime",
        "VerificationDateTime", "ObservationDateTime", "FrameAcquisitionDateTime", "FrameReferenceDateTime",
        "DateOfLastCalibration", "TimeOfLastCalibration", "DateOfLastDetectorCalibration",
        "TimeOfLastDetectorCalibration", "StartAcquisitionDateTime", "EndAcquisitionDateTime",
        "Date", "Time", "DateTime",
    ), _S),
    # -- UIDs: keyed pseudonyms --------------------------------------------------------------------
    **dict.fromkeys((
        "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
        "SynchronizationFrameOfReferenceUID", "ReferencedFrameOfReferenceUID", "RelatedFrameOfReferenceUID",
        "ReferencedSOPInstanceUID", "ReferencedSOPInstanceUIDInFile", "InstanceCreatorUID", "IrradiationEventUID",
        "ConcatenationUID", "DimensionOrganizationUID", "StorageMediaFileSetUID", "DeviceUID", "FiducialUID",
        "TargetUID", "TransactionUID", "UID", "DoseReferenceUID", "TemplateExtensionOrganizationUID",
        "TemplateExtensionCreatorUID", "FailedSOPInstanceUIDList", "PaletteColorLookupTableUID",
        "LargePaletteColorLookupTableUID", "CreatorVersionUID", "ObservationUID", "SourceFrameOfReferenceUID",
        "TrackingUID", "SpecimenUID", "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID",
    ), _U),
}

MIN_KEY_BYTES = 32
# De-identification Method is an LO: at most 64 characters.
DEIDENTIFICATION_METHOD = "radstream: PS3.15 Basic Profile, keyed UIDs, shifted dates"
# CID 7050 codes for what was applied, recorded alongside the free-text method.
_BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")
_MODIFIED_DATES_CODE = ("113107", "DCM", "Retain Longitudinal Temporal Information Modified Dates Option")
# Valid values that say nothing; the last two are what older de-identifiers (and radstream) wrote.
DUMMY_DATE, DUMMY_TIME, DUMMY_DATETIME = "19000101", "000000", "19000101000000"
_DUMMY_BY_VR = {"PN": "ANONYMIZED", "LO": "ANONYMIZED", "SH": "ANONYMIZED", "CS": "ANONYMIZED", "LT": "ANONYMIZED",
                "ST": "ANONYMIZED", "UT": "ANONYMIZED", "DA": DUMMY_DATE, "TM": DUMMY_TIME, "DT": DUMMY_DATETIME,
                "IS": "0", "DS": "0"}
_DUMMY_VALUES = {"", *_DUMMY_BY_VR.values(), "ANONYMOUS", "00010101"}
_MAX_SHIFT_DAYS = 3650  # up to ten years back: enough to hide the day, small enough to stay plausible
_TIME = re.compile(r"([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?")
# Modalities whose images may carry burned-in text (radiographs, fluoroscopy, secondary capture...).
BURNED_IN_PRONE_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "RF", "RG", "XA", "OT", "US", "ES", "XC"})
UNREADABLE_HEADER = "the identity check could not read the header"


# --- keyed pseudonyms ------------------------------------------------------------------------------
def check_key(key: bytes) -> bytes:
    """`key` if it can serve as the pseudonym key, else ValueError (never shows the key)."""
    if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the de-identification key must be at least {MIN_KEY_BYTES} random bytes")
    return key


def _keyed_digest(key: bytes, purpose: str, value: str) -> bytes:
    return hmac.new(key, purpose.encode() + b"\0" + value.encode(), hashlib.sha256).digest()


def pseudonym_uid(original: str, key: bytes) -> str:
    """A valid DICOM UID standing for `original`: "2.25." and 128 bits of its keyed hash as a decimal
    integer (at most 44 characters, no leading zeros)."""
    return "2.25." + str(int.from_bytes(_keyed_digest(key, "uid", original)[:16], "big"))


def date_shift_days(study_uid: str, key: bytes) -> int:
    """How many days this study's dates move back: 1 to _MAX_SHIFT_DAYS, the same for every run."""
    return 1 + int.from_bytes(_keyed_digest(key, "date-shift", study_uid)[:8], "big") % _MAX_SHIFT_DAYS


def dicom_study_id(deidentified_study_uid: str) -> str:
    """The pipeline's study id for a DICOM: a hash of its (already pseudonymous) Study Instance UID,
    so every run and every file of the study agree, whatever the files are called."""
    return "DCM-" + hashlib.sha256(deidentified_study_uid.encode()).hexdigest()[:24]


def _shift_date(value: str, days: int | None) -> str:
    try:
        parsed = date(int(value[:4]), int(value[4:6]), int(value[6:8])) if re.fullmatch(r"[0-9]{8}", value) else None
    except ValueError:
        parsed = None
    if parsed is None or days is None:
        return DUMMY_DATE
    return (parsed - timedelta(days=days)).strftime("%Y%m%d")


def _shifted(value: str, vr: str, days: int | None) -> str:
    """One DA/DT/TM value moved by `days`; a value that cannot be moved becomes a valid dummy."""
    if vr == "DA":
        return _shift_date(value, days)
    if vr == "DT":
        if len(value) < 8 or (shifted := _shift_date(value[:8], days)) == DUMMY_DATE:
            return DUMMY_DATETIME
        return shifted + value[8:]
    if vr == "TM":
        return value if _TIME.fullmatch(value) and days is not None else DUMMY_TIME
    return ""


# --- de-identification -----------------------------------------------------------------------------
def _values(elem: DataElement) -> list:
    from pydicom.multival import MultiValue

    return list(elem.value) if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]


def _action(elem: DataElement) -> Action | None:
    from pydicom.datadict import get_entry, mask_match

    if elem.keyword:
        return PROFILE.get(elem.keyword)
    # Overlay and curve attributes live in repeating groups (60xx, 50xx): pydicom names them by mask.
    return PROFILE.get(get_entry(elem.tag)[4]) if mask_match(elem.tag) else None


def _apply(ds: Dataset, key: bytes, shift_days: int | None) -> None:
    for elem in list(ds):
        if elem.tag.is_private:
            continue  # removed as a whole afterwards
        action = _action(elem)
        if action is Action.REMOVE:
            del ds[elem.tag]
        elif action is Action.EMPTY:
            elem.value = [] if elem.VR == "SQ" else ""
        elif action is Action.DUMMY:
            elem.value = [] if elem.VR == "SQ" else _DUMMY_BY_VR.get(elem.VR, "")
        elif action is Action.PSEUDONYM and elem.VR == "UI":
            uids = [pseudonym_uid(str(v), key) if v else "" for v in _values(elem)]
            elem.value = uids if len(uids) > 1 else uids[0]
        elif action is Action.SHIFT and elem.value not in (None, ""):
            moved = [_shifted(str(v), elem.VR, shift_days) for v in _values(elem)]
            elem.value = moved if len(moved) > 1 else moved[0]
        elif elem.VR == "SQ":
            for item in elem.value:
                _apply(item, key, shift_days)


def deidentify(ds: Dataset, key: bytes) -> Dataset:
    """De-identify `ds` in place (and return it) by `PROFILE`: identifiers removed or blanked, private
    attributes removed, UIDs replaced by keyed pseudonyms, dates shifted by the study's keyed offset
    (dummies when the study has no UID), markers (0012,0062)/(0012,0063)/(0012,0064) and (0028,0303) set."""
    from pydicom import Dataset as PydicomDataset

    check_key(key)
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    shift_days = date_shift_days(study_uid, key) if study_uid else None
    _apply(ds, key, shift_days)
    ds.remove_private_tags()
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    codes = [_BASIC_PROFILE_CODE, *([_MODIFIED_DATES_CODE] if shift_days else [])]
    ds.DeidentificationMethodCodeSequence = [_code_item(PydicomDataset(), code) for code in codes]
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shift_days else "REMOVED"
    if hasattr(ds, "file_meta") and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _code_item(item: Dataset, code: tuple[str, str, str]) -> Dataset:
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def deidentify_bytes(data: bytes, key: bytes) -> bytes:
    """A DICOM file's bytes, de-identified; the transfer syntax and pixel data are kept as they are.
    Raises ValueError for a file that ends early rather than writing a broken copy."""
    import pydicom

    check_key(key)
    ds = pydicom.dcmread(io.BytesIO(data))
    _check_complete(ds)
    deidentify(ds, key)
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


# --- the identity check ----------------------------------------------------------------------------
@dataclass(frozen=True)
class IdentityCheck:
    reasons: list[str]  # each one enough to refuse the file
    warnings: list[str]  # worth telling the user, not a refusal


def check_identity(ds: Dataset) -> IdentityCheck:
    """What in `ds` may still identify the patient, judged against `PROFILE` at every depth. A header
    the check cannot read counts as identified; the exception's text is left out (it may quote a value)."""
    try:
        return _check_identity(ds)
    except Exception as exc:  # noqa: BLE001 - pydicom converts lazily and raises many types on a damaged header
        return IdentityCheck([f"{UNREADABLE_HEADER} ({type(exc).__name__})"], [])


def _check_identity(ds: Dataset) -> IdentityCheck:
    dates_modified = str(ds.get("LongitudinalTemporalInformationModified", "")).upper() == "MODIFIED"
    found, private = set(), False
    for elem in ds.iterall():
        private = private or elem.tag.is_private
        action = _action(elem)
        if action in (None, Action.PSEUDONYM) or (action is Action.SHIFT and dates_modified):
            continue
        if _carries_value(elem):
            found.add(elem.keyword or elem.name)
    reasons = [f"{keyword} is present" for keyword in sorted(found)]
    if private:
        reasons.append("private attributes are present and may hold identity")
    burned_in = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    if burned_in == "YES":
        reasons.append("Burned In Annotation (0028,0301) is YES: identity may be written in the pixels")
    warnings = []
    if not burned_in and str(ds.get("Modality", "")).strip().upper() in BURNED_IN_PRONE_MODALITIES:
        warnings.append(f"Burned In Annotation (0028,0301) is missing on a {ds.Modality} image: check the pixels "
                        "for written names or dates")
    return IdentityCheck(reasons, warnings)


def is_identified(ds: Dataset) -> list[str]:
    """Reasons to believe `ds` still identifies the patient; empty when it looks de-identified. A safety
    net before upload, not a certification."""
    return check_identity(ds).reasons


def require_deidentified(ds: Dataset) -> None:
    """Raise IdentifiedDicom naming every reason `check_identity` finds."""
    if reasons := is_identified(ds):
        raise IdentifiedDicom("the DICOM still carries identity: " + "; ".join(reasons))


def _carries_value(elem: DataElement) -> bool:
    if elem.VR == "SQ":
        return len(elem.value) > 0
    if isinstance(elem.value, bytes):
        return len(elem.value) > 0
    return any(str(v).strip().upper() not in _DUMMY_VALUES for v in _values(elem) if v is not None)
