"""Put studies where the pipeline picks them up (`radstream ingest`).

- DICOM (told by content): de-identified (PS3.15 basic profile) and uploaded as
  incoming/<study_id>.dcm, the id taken from the file name. A copy that still looks identified
  (e.g. Burned In Annotation) is refused. With --already-deidentified the file is uploaded as it is
  (UIDs kept) and the check only warns; the pipeline still refuses a DICOM carrying identity.
- JPEG/PNG: need a sidecar next to them (same name, .json). It is validated here, uploaded FIRST as
  incoming/<study_id>.json, then the image as incoming/<study_id>.<png|jpg>: uploads of images start
  the pipeline, which then finds its sidecar.

Folders are searched recursively; their sidecars go with their images and other files are skipped.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radstream.names import INCOMING_PREFIX
from radstream.pipeline.errors import InvalidInput

_EXTENSIONS = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg"}
_CONTENT_TYPES = {"dicom": "application/dicom", "png": "image/png", "jpeg": "image/jpeg", "json": "application/json"}


class Refused(Exception):
    """This file is not uploaded; the message says why and what to do."""


class NotAnImage(Refused):
    """Neither DICOM, PNG nor JPEG: refused when named, skipped when found in a folder."""


@dataclass
class Study:
    path: Path
    format: str
    study_id: str
    objects: list[tuple[str, bytes, str]]  # (key, body, content type) in upload order
    deidentified: bool = False
    warnings: list[str] = field(default_factory=list)


def collect(paths: list[Path]) -> list[tuple[Path, bool]]:
    """(file, named explicitly) for every candidate study; sidecars are found from their images."""
    found: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found += [(p, False) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() != ".json"]
        else:
            found.append((path, True))
    return found


def prepare_study(path: Path, already_deidentified: bool) -> Study:
    """Read one file and build what to upload; raises Refused or a pipeline error."""
    from radstream.pipeline.errors import UnsupportedImage
    from radstream.pipeline.readers import sniff

    if path.suffix.lower() == ".json":
        raise Refused("this is a sidecar: name its image instead (the sidecar is uploaded with it)")
    data = path.read_bytes()
    try:
        kind = sniff(data)
    except UnsupportedImage as exc:
        raise NotAnImage(str(exc)) from None
    if kind == "dicom":
        return _dicom_study(path, data, already_deidentified)
    return _raster_study(path, data, kind)


def _dicom_study(path: Path, data: bytes, already_deidentified: bool) -> Study:
    import pydicom

    from radstream.pipeline.deid import deidentify_bytes, is_identified
    from radstream.pipeline.metadata import study_id_from_key

    if not already_deidentified:
        try:
            data = deidentify_bytes(data)
        except ValueError as exc:
            raise Refused(f"cannot de-identify: {exc}") from None
    reasons = is_identified(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
    if reasons and not already_deidentified:
        raise Refused("still carries identity after de-identification: " + "; ".join(reasons))
    study_id = study_id_from_key(path.name)
    key = f"{INCOMING_PREFIX}{study_id}{_EXTENSIONS['dicom']}"
    return Study(path, "dicom", study_id, [(key, data, _CONTENT_TYPES["dicom"])],
                 deidentified=not already_deidentified, warnings=reasons)


def _raster_study(path: Path, data: bytes, kind: str) -> Study:
    from radstream.pipeline.metadata import parse_sidecar

    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise Refused(f"a {kind.upper()} needs its sidecar {sidecar.name} (study_id, view, timestamp) next to it")
    sidecar_bytes = sidecar.read_bytes()
    study_id = parse_sidecar(sidecar_bytes).study_id
    objects = [
        (f"{INCOMING_PREFIX}{study_id}.json", sidecar_bytes, _CONTENT_TYPES["json"]),  # first: it must be there in time
        (f"{INCOMING_PREFIX}{study_id}{_EXTENSIONS[kind]}", data, _CONTENT_TYPES[kind]),
    ]
    return Study(path, kind, study_id, objects)


def ingest_files(s3: Any, bucket: str, paths: list[Path], already_deidentified: bool = False) -> dict[str, Any]:
    """Prepare and upload every study under `paths`; one entry per file, refusals included."""
    from radstream.aws.runs import upload

    entries: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for path, named in collect(paths):
        entry: dict[str, Any] = {"path": str(path), "study_id": None, "format": None, "status": "failed",
                                 "keys": [], "deidentified": False, "warnings": [], "error": None}
        try:
            study = prepare_study(path, already_deidentified)
            if study.study_id in seen:
                raise Refused(f"study id {study.study_id} is also used by {seen[study.study_id]}; "
                              "rename one (the id comes from the sidecar or the DICOM file name)")
            seen[study.study_id] = path
            entry.update(study_id=study.study_id, format=study.format, deidentified=study.deidentified,
                         warnings=study.warnings)
            for uploaded in study.objects:
                upload(s3, bucket, [uploaded])
                entry["keys"].append(uploaded[0])
            entry["status"] = "uploaded"
        except NotAnImage:
            if not named:
                continue
            entry.update(status="refused", error="not a DICOM, PNG or JPEG file")
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            refused = isinstance(exc, (Refused, InvalidInput))  # the file's fault, not the upload's
            entry.update(status="refused" if refused else "failed", error=str(exc))
        entries.append(entry)
    counts = {s: sum(e["status"] == s for e in entries) for s in ("uploaded", "refused", "failed")}
    bad = counts["refused"] + counts["failed"]
    return {"ok": bad == 0 and counts["uploaded"] > 0, "bucket": bucket, "counts": counts, "studies": entries,
            "error": f"{bad} file(s) not uploaded" if bad else (None if entries else "no study found")}
