"""ValidateInput: the trigger (an EventBridge S3 "Object Created" event, or a direct start with
`s3_path` and optionally `metadata` and `version_id`) to the pipeline contract:
{study_id, s3_path, version_id, input_ref, format, metadata, inference_results, processing_time_ms}.

Which objects are studies: the EventBridge rule starts an execution for every object except `*.json`
sidecars (a pattern cannot also require the incoming/ prefix on the same field), and this first
step refuses, with a recorded NotUnderIncoming failure, an object outside incoming/. Nothing that
starts an execution is dropped without a trace.

The format is told by content, never by name: anything but DICOM, JPEG or PNG is refused as
UnsupportedFormat naming what it looked like. A DICOM brings its metadata in its tags and must
already be de-identified: one that is not, or whose header the identity check cannot read, raises
IdentifiedDicom (never copied into the failures); its study id is derived from its (pseudonymous)
Study Instance UID. A JPEG/PNG needs its sidecar (same key, extension replaced by .json), whose
`study_id` is the study's id and which must declare `burned_in_annotation: false`. A missing sidecar
raises MissingMetadata, which the state machine retries for a bounded time since clients may
upload late. The object key never becomes an id.

Every read names the object version the event named, so the identity check and the pixels later
stages decode are the same upload even if the key is overwritten meanwhile."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

from radstream.pipeline import INCOMING_PREFIX
from radstream.pipeline import lambda_support as support
from radstream.pipeline.errors import (
    CorruptImage,
    IdentifiedDicom,
    InvalidMetadata,
    MissingMetadata,
    NotUnderIncoming,
)
from radstream.pipeline.metadata import metadata_from_dicom, parse_sidecar, validate_image_metadata
from radstream.pipeline.readers import DICOM_METADATA_KEYWORDS, sniff
from radstream.pipeline.results import input_ref

_SNIFF_BYTES = 132  # the DICOM preamble and magic; PNG and JPEG magics are shorter


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    with support.stage_timer(timings, "validate"):
        bucket, key = support.input_location(event)
        version = support.input_version(event)
        if not key.startswith(INCOMING_PREFIX):
            raise NotUnderIncoming(f"the object is not under {INCOMING_PREFIX}; only uploads there are studies")
        obj = support.client("s3").get_object(Bucket=bucket, Key=key, **support.version_argument(version))
        # Refused from the object's size alone: an oversized study is never read.
        support.input_limits().check_bytes(obj["ContentLength"])
        head = obj["Body"].read(_SNIFF_BYTES)
        kind = sniff(head)
        if kind == "dicom":
            metadata = _dicom_metadata(head + obj["Body"].read(), obj["LastModified"])
        else:
            obj["Body"].close()  # the pixels are PrepareImage's business
            metadata = validate_image_metadata(event["metadata"]) if event.get("metadata") else _sidecar(bucket, key)
        # What S3 served: the version asked for, or the current one when none was named (a direct start).
        served = obj.get("VersionId")
        version = served if served and served != "null" else version
    return {
        "study_id": metadata.study_id,
        "s3_path": f"s3://{bucket}/{key}",
        "version_id": version,
        "input_ref": input_ref(key, version),
        "format": kind,
        "metadata": metadata.to_json_dict(),
        "inference_results": None,
        "processing_time_ms": timings,
    }


def sidecar_key(key: str) -> str:
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return f"{stem}.json"


def _sidecar(bucket: str, key: str):
    try:
        data = support.read_object(bucket, sidecar_key(key))
    except support.client("s3").exceptions.NoSuchKey:
        # The key's text stays out of the message: it lands in the failure's telemetry.
        raise MissingMetadata("no sidecar (the image's key with .json for its extension) next to the image; "
                              "upload the sidecar before the image") from None
    return parse_sidecar(data)


def _dicom_metadata(data: bytes, received_at: datetime):
    import pydicom

    from radstream.pipeline.deid import UNREADABLE_HEADER, dicom_study_id, require_deidentified

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - unreadable means not shown to be de-identified
        raise IdentifiedDicom(f"{UNREADABLE_HEADER} ({type(exc).__name__})") from None
    require_deidentified(ds)
    try:
        tags = {kw: str(ds.get(kw, "") or "") for kw in DICOM_METADATA_KEYWORDS}
        study_uid = str(ds.get("StudyInstanceUID", "") or "").strip()
    except Exception as exc:  # noqa: BLE001 - pydicom converts lazily and raises many types on a damaged header
        # The type only: the text may quote the value it choked on.
        raise CorruptImage(f"the DICOM header cannot be read ({type(exc).__name__})", stage="validate") from None
    if not study_uid:
        raise InvalidMetadata("the DICOM has no Study Instance UID (0020,000D), which its study id is derived from")
    return metadata_from_dicom(tags, dicom_study_id(study_uid), received_at.astimezone(timezone.utc))
