"""ValidateInput: the trigger (an EventBridge S3 "Object Created" event, or a direct start with
`s3_path` and optionally `metadata`) to the pipeline contract:
{study_id, s3_path, format, metadata, inference_results, processing_time_ms}.

The format is told by content. A DICOM brings its metadata in its tags and must already be
de-identified: one that is not, or whose header the identity check cannot read, raises
IdentifiedDicom (never copied into the failures). A JPEG/PNG needs its sidecar (same key, .json),
which must declare `burned_in_annotation: false`. A missing sidecar raises
MissingMetadata, which the state machine retries for a bounded time since clients may upload late."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.errors import (
    CorruptImage,
    IdentifiedDicom,
    InvalidMetadata,
    MissingMetadata,
)
from radstream.pipeline.metadata import (
    DICOM_METADATA_KEYWORDS,
    metadata_from_dicom,
    parse_sidecar,
    validate_image_metadata,
)
from radstream.pipeline.readers import sniff

_SNIFF_BYTES = 132  # the DICOM preamble and magic; PNG and JPEG magics are shorter


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings: dict[str, float] = {}
    with support.stage_timer(timings, "validate"):
        bucket, key = support.input_location(event)
        obj = support.client("s3").get_object(Bucket=bucket, Key=key)
        # Refused from the object's size alone: an oversized study is never read.
        support.input_limits().check_bytes(obj["ContentLength"])
        head = obj["Body"].read(_SNIFF_BYTES)
        kind = sniff(head)
        if kind == "dicom":
            metadata = _dicom_metadata(head + obj["Body"].read(), key, obj["LastModified"])
        else:
            obj["Body"].close()  # the pixels are PrepareImage's business
            metadata = validate_image_metadata(event["metadata"]) if event.get("metadata") else _sidecar(bucket, key)
            _check_matches_key(metadata.study_id, key)
    return {
        "study_id": metadata.study_id,
        "s3_path": f"s3://{bucket}/{key}",
        "format": kind,
        "metadata": metadata.to_json_dict(),
        "inference_results": None,
        "processing_time_ms": timings,
    }


def sidecar_key(key: str) -> str:
    stem = key.rsplit(".", 1)[0] if "." in key.rsplit("/", 1)[-1] else key
    return f"{stem}.json"


def _check_matches_key(study_id: str, key: str) -> None:
    """A sidecar names the image it belongs to; one claiming another study's id would overwrite that
    study's results."""
    stem = sidecar_key(key).rsplit("/", 1)[-1][: -len(".json")]
    if study_id != stem:
        raise InvalidMetadata(
            f"the sidecar's study_id does not match the image name {stem[:64]!r}; upload the image as "
            "incoming/<study_id>.<png|jpg>"
        )


def _sidecar(bucket: str, key: str):
    try:
        data = support.read_object(bucket, sidecar_key(key))
    except support.client("s3").exceptions.NoSuchKey:
        raise MissingMetadata(f"no sidecar {sidecar_key(key)} next to {key}; upload the sidecar before the image") from None
    return parse_sidecar(data)


def _dicom_metadata(data: bytes, key: str, received_at: datetime):
    import pydicom

    from radstream.pipeline.deid import UNREADABLE_HEADER, require_deidentified

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - unreadable means not shown to be de-identified
        raise IdentifiedDicom(f"{UNREADABLE_HEADER} ({type(exc).__name__})") from None
    require_deidentified(ds)
    try:
        tags = {kw: str(ds.get(kw, "") or "") for kw in DICOM_METADATA_KEYWORDS}
    except Exception as exc:  # noqa: BLE001 - pydicom converts lazily and raises many types on a damaged header
        # The type only: the text may quote the value it choked on.
        raise CorruptImage(f"the DICOM header cannot be read ({type(exc).__name__})", stage="validate") from None
    return metadata_from_dicom(tags, key, received_at.astimezone(timezone.utc))
