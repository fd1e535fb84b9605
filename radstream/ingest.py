"""Put studies where the pipeline picks them up (`radstream ingest`).

- DICOM (told by content): de-identified (PS3.15 basic profile, pseudonyms keyed with the
  deployment's key) and uploaded as incoming/<study_id>.dcm, the id derived from its de-identified
  Study Instance UID. With --already-deidentified the file is not de-identified again (UIDs kept),
  but it is checked all the same: a DICOM that still looks identified (e.g. Burned In Annotation,
  a name, a date) is refused either way, and so is one whose header the check cannot read.
- JPEG/PNG: need a sidecar next to them (same name, .json) declaring `burned_in_annotation: false`.
  It is validated here, uploaded FIRST as
  incoming/<study_id>.json, then the image as incoming/<study_id>.<png|jpg>: uploads of images start
  the pipeline, which then finds its sidecar.

Folders are searched recursively; their sidecars go with their images and other files are skipped.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radstream.names import INCOMING_PREFIX
from radstream.pipeline.errors import InvalidInput

_EXTENSIONS = {"dicom": ".dcm", "png": ".png", "jpeg": ".jpg"}
_CONTENT_TYPES = {"dicom": "application/dicom", "png": "image/png", "jpeg": "image/jpeg", "json": "application/json"}

# Where the de-identification key comes from (a --key-file, or the deployment's secret). Asked only
# when a DICOM is to be de-identified: PNG/JPEG and --already-deidentified uploads need no key.
KeySource = Callable[[], bytes]


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


def prepare_study(path: Path, key: KeySource, already_deidentified: bool) -> Study:
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
        return _dicom_study(path, data, key, already_deidentified)
    return _raster_study(path, data, kind)


def _dicom_study(path: Path, data: bytes, key: KeySource, already_deidentified: bool) -> Study:
    import pydicom

    from radstream.pipeline.deid import check_identity, deidentify_bytes, dicom_study_id

    if not already_deidentified:
        secret = key()
        try:
            data = deidentify_bytes(data, secret)
        except ValueError as exc:
            raise Refused(f"cannot de-identify: {exc}") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable header cannot be shown to be de-identified
        raise Refused(f"the DICOM header cannot be read ({type(exc).__name__})") from None
    check = check_identity(ds)
    if check.reasons:
        when = "as uploaded" if already_deidentified else "after de-identification"
        raise Refused(f"still carries identity {when}: " + "; ".join(check.reasons))
    study_uid = str(ds.get("StudyInstanceUID", "") or "")
    if not study_uid:
        raise Refused("the DICOM has no Study Instance UID to derive its study id from")
    study_id = dicom_study_id(study_uid)
    object_key = f"{INCOMING_PREFIX}{study_id}{_EXTENSIONS['dicom']}"
    return Study(path, "dicom", study_id, [(object_key, data, _CONTENT_TYPES["dicom"])],
                 deidentified=not already_deidentified, warnings=check.warnings)


def _raster_study(path: Path, data: bytes, kind: str) -> Study:
    from radstream.pipeline.metadata import parse_sidecar

    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise Refused(f"a {kind.upper()} needs its sidecar {sidecar.name} (study_id, view, timestamp, burned_in_annotation) next to it")
    sidecar_bytes = sidecar.read_bytes()
    study_id = parse_sidecar(sidecar_bytes).study_id
    objects = [
        (f"{INCOMING_PREFIX}{study_id}.json", sidecar_bytes, _CONTENT_TYPES["json"]),  # first: it must be there in time
        (f"{INCOMING_PREFIX}{study_id}{_EXTENSIONS[kind]}", data, _CONTENT_TYPES[kind]),
    ]
    return Study(path, kind, study_id, objects)


def ingest_files(s3: Any, bucket: str, paths: list[Path], key: KeySource,
                 already_deidentified: bool = False) -> dict[str, Any]:
    """Prepare and upload every study under `paths`; one entry per file, refusals included. `key`
    gives the deployment's de-identification key; when it cannot, the DICOM files needing
    de-identification fail with its reason and nothing of them is uploaded."""
    from radstream.aws.runs import upload

    entries: list[dict[str, Any]] = []
    seen: dict[str, Path] = {}
    for path, named in collect(paths):
        entry: dict[str, Any] = {"path": str(path), "study_id": None, "format": None, "status": "failed",
                                 "keys": [], "deidentified": False, "warnings": [], "error": None}
        try:
            study = prepare_study(path, key, already_deidentified)
            if study.study_id in seen:
                raise Refused(f"study id {study.study_id} is also used by {seen[study.study_id]}; "
                              "a DICOM's id comes from its Study Instance UID, so two files of one study share it; "
                              "an image's comes from its sidecar")
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
