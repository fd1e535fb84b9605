"""The study metadata schema: the JSON sidecar next to a JPEG/PNG, or the DICOM tags standing in for it.

Only non-identifying fields are allowed and free text is deliberately absent (notes are where
names and dates leak). Unknown fields, oversized values and duplicate keys are refused with the
field named; offending values are never echoed back, since they may be identifying.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from radstream.pipeline.errors import InvalidMetadata
from radstream.pipeline.study_ids import check_study_id

SIDECAR_MAX_BYTES = 4096


class View(str, Enum):
    """Projection of the radiograph; the DICOM View Position (0018,5101) terms plus LATERAL."""

    PA = "PA"
    AP = "AP"
    LATERAL = "LATERAL"
    LL = "LL"
    RL = "RL"
    LLD = "LLD"
    RLD = "RLD"
    LLO = "LLO"
    RLO = "RLO"


def parse_timestamp(value: object) -> datetime:
    """An ISO-8601 date-time string (or a datetime); one without an offset is read as UTC so all
    stored times compare."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError("must be an ISO-8601 date-time string such as 2024-01-15T10:00:00Z")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("is not an ISO-8601 date-time such as 2024-01-15T10:00:00Z") from None
    if "T" not in text and " " not in text:
        raise ValueError("needs a time as well as a date, e.g. 2024-01-15T10:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class StudyMetadata(BaseModel):
    """What the pipeline knows about a study besides its pixels."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    study_id: str
    view: View
    timestamp: datetime
    # Ages above 89 identify people and are only allowed as "90+" (HIPAA safe harbour).
    age_band: str | None = Field(default=None, max_length=7, pattern=r"^[0-9]{1,3}(-[0-9]{1,3}|\+)$")
    sex: Literal["F", "M", "O", "U"] | None = None  # DICOM Patient's Sex terms
    site_code: str | None = Field(default=None, max_length=16, pattern=r"^[A-Za-z0-9_-]+$")
    modality: str | None = Field(default=None, max_length=4, pattern=r"^[A-Z]{2,4}$")
    # Whether names or dates are written in the pixels. A JPEG/PNG has no header to say so, so its
    # sidecar must declare false (`require_no_burned_in_annotation`); a DICOM says it in its tags.
    burned_in_annotation: bool | None = Field(default=None, strict=True)

    @field_validator("study_id", mode="before")
    @classmethod
    def _study_id(cls, value: object) -> str:
        return check_study_id(value)

    @field_validator("view", mode="before")
    @classmethod
    def _view(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) and len(value) <= 16 else value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: object) -> datetime:
        return parse_timestamp(value)

    @field_validator("age_band")
    @classmethod
    def _age_band(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.endswith("+"):
            if int(value[:-1]) > 90:
                raise ValueError("an open band must start at 90 or below, e.g. '90+'")
            return value
        low, high = (int(part) for part in value.split("-"))
        if low > high or high > 89:
            raise ValueError("must be 'low-high' with low <= high <= 89, or '90+'")
        return value

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(p) for p in item["loc"])[:64] or "(sidecar)"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"field '{field}': {message}")
    return "; ".join(parts)


def validate_metadata(fields: dict[str, Any]) -> StudyMetadata:
    """Validate an already-parsed mapping (e.g. the Step Functions input's `metadata`)."""
    if not isinstance(fields, dict):
        raise InvalidMetadata("metadata must be a JSON object")
    try:
        return StudyMetadata.model_validate(fields)
    except ValidationError as exc:
        raise InvalidMetadata(f"invalid metadata: {_describe(exc)}") from None


def require_no_burned_in_annotation(metadata: StudyMetadata) -> StudyMetadata:
    """`metadata` if it declares the image free of burned-in text, else InvalidMetadata: a JPEG/PNG
    cannot be checked for written names, so the sender has to vouch for it."""
    if metadata.burned_in_annotation is None:
        raise InvalidMetadata("invalid metadata: field 'burned_in_annotation' is missing; a JPEG/PNG sidecar must "
                              "declare \"burned_in_annotation\": false (no names or dates written in the pixels)")
    if metadata.burned_in_annotation:
        raise InvalidMetadata("invalid metadata: field 'burned_in_annotation' is true: identity may be written in "
                              "the pixels; such images are not accepted")
    return metadata


def validate_image_metadata(fields: dict[str, Any]) -> StudyMetadata:
    """Validate the metadata of a JPEG/PNG (its sidecar, or the start input's `metadata`)."""
    return require_no_burned_in_annotation(validate_metadata(fields))


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidMetadata(f"invalid metadata: field '{key[:64]}' appears twice")
        seen[key] = value
    return seen


def parse_sidecar(data: bytes) -> StudyMetadata:
    """Parse and validate a sidecar's raw bytes; it must declare `burned_in_annotation: false`."""
    if len(data) > SIDECAR_MAX_BYTES:
        raise InvalidMetadata(f"sidecar is {len(data)} bytes; the limit is {SIDECAR_MAX_BYTES}")
    if not data.strip():
        raise InvalidMetadata("sidecar is empty; it must be a JSON object with study_id, view and timestamp")
    try:
        fields = json.loads(data.decode("utf-8"), object_pairs_hook=_refuse_duplicate_keys)
    except UnicodeDecodeError:
        raise InvalidMetadata("sidecar is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidMetadata(f"sidecar is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return validate_image_metadata(fields)


_DICOM_DATE_PAIRS = (("AcquisitionDate", "AcquisitionTime"), ("ContentDate", "ContentTime"), ("StudyDate", "StudyTime"))


def _dicom_datetime(date: str, time: str) -> datetime | None:
    """DA + TM to a datetime; None when missing, malformed or a de-identification dummy (1900 or before)."""
    if not re.fullmatch(r"[0-9]{8}", date):
        return None
    digits = re.sub(r"[^0-9.]", "", time).split(".")[0].ljust(6, "0")[:6]
    try:
        parsed = datetime.strptime(date + digits, "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.year > 1900 else None


def _age_band(age: str) -> str | None:
    """DICOM Age String ('047Y') to a ten-year band; months/weeks/days mean under a year."""
    match = re.fullmatch(r"([0-9]{3})([DWMY])", age)
    if not match:
        return None
    years = int(match.group(1)) if match.group(2) == "Y" else 0
    if years >= 90:
        return "90+"
    low = years - years % 10
    return f"{low}-{low + 9}"


def metadata_from_dicom(tags: dict[str, str], study_id: str, received_at: datetime) -> StudyMetadata:
    """Metadata for a DICOM study: the id given (`deid.dicom_study_id` of its Study Instance UID), the view from View Position, the time
    from the acquisition/content/study date, or `received_at` when the dates are absent, dummies or
    shifted by de-identification (Longitudinal Temporal Information Modified)."""
    view = tags.get("ViewPosition", "").strip().upper()
    if not view:
        raise InvalidMetadata(
            "the DICOM has no View Position (0018,5101); set it (PA, AP, LL, ...) before uploading"
        )
    dates_are_real = tags.get("LongitudinalTemporalInformationModified", "").strip().upper() in ("", "UNMODIFIED")
    timestamp = next(
        (t for d, tm in _DICOM_DATE_PAIRS if (t := _dicom_datetime(tags.get(d, ""), tags.get(tm, "")))),
        received_at,
    ) if dates_are_real else received_at
    fields: dict[str, Any] = {"study_id": study_id, "view": view, "timestamp": timestamp}
    sex = tags.get("PatientSex", "").strip().upper()
    if sex in ("F", "M", "O"):
        fields["sex"] = sex
    if band := _age_band(tags.get("PatientAge", "").strip()):
        fields["age_band"] = band
    modality = tags.get("Modality", "").strip()
    if re.fullmatch(r"[A-Z]{2,4}", modality):
        fields["modality"] = modality
    return validate_metadata(fields)
