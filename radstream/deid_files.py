"""De-identified copies of DICOM files (PS3.15 basic profile), as `radstream deid` makes them.

Named files must be DICOM; folders are searched recursively and their non-DICOM files skipped.
Copies keep the folder layout under the output folder; originals are never modified. A copy that
the identity check still flags is not written: the file is reported as failed.

The key file holds the secret the pseudonyms (UIDs, date shift) are keyed with: at least 32 random
bytes, read as they are (`head -c 32 /dev/urandom > deid.key`). The same key gives the same
pseudonyms on every run; keep it secret, since whoever has it can test guesses of original UIDs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.errors import ConfigError

if TYPE_CHECKING:
    from radstream.context import Context
    from radstream.ingest import KeySource

KEY_FILE_HINT = "make one with `head -c 32 /dev/urandom > deid.key` (at least 32 random bytes) and keep it secret"


def read_key_file(path: Path) -> bytes:
    """The de-identification key in `path`; ConfigError when it is missing, unreadable or short."""
    from radstream.pipeline.deid import MIN_KEY_BYTES

    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path} ({exc.strerror or type(exc).__name__})",
                          hint=KEY_FILE_HINT) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"the key file {path} holds {len(key)} bytes; at least {MIN_KEY_BYTES} are needed",
                          hint=KEY_FILE_HINT)
    return key


def key_source(key_file: Path | None, ctx: Context) -> KeySource:
    """The key from `key_file` when one is named, else the deployment's own (Secrets Manager, read
    once and only when first needed)."""
    from functools import cache

    if key_file is not None:
        key = read_key_file(key_file)
        return lambda: key

    @cache
    def deployment_key() -> bytes:
        from radstream.aws.secrets import read_key
        from radstream.pipeline.deid import check_key

        return check_key(read_key(ctx.client("secretsmanager"), ctx.names.deid_key_secret))

    return deployment_key


def plan_copies(inputs: list[Path], out: Path) -> list[tuple[Path, Path, bool]]:
    """(source, destination, named explicitly) for every file to process. Raises ConfigError when
    two sources would land on one destination or a destination is a source."""
    out = out.resolve()
    pairs: list[tuple[Path, Path, bool]] = []
    for item in inputs:
        item = item.resolve()
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and not p.is_relative_to(out))
            pairs.extend((p, out / item.name / p.relative_to(item), False) for p in files)
        else:
            pairs.append((item, out / item.name, True))
    seen: dict[Path, Path] = {}
    sources = {src for src, _, _ in pairs}
    for src, dst, _ in pairs:
        if dst in sources:
            raise ConfigError(f"{dst} is an input and would be overwritten", hint="choose another --out folder")
        if dst in seen:
            raise ConfigError(
                f"{seen[dst]} and {src} would both be written to {dst}",
                hint="de-identify them in separate runs or into separate --out folders",
            )
        seen[dst] = src
    return pairs


def _looks_like_dicom(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(132)[128:] == b"DICM"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def deidentify_files(inputs: list[Path], out: Path, key: bytes) -> dict[str, Any]:
    """De-identify every DICOM under `inputs` into `out` with the pseudonym `key`; one entry per file,
    failures included. A copy the identity check flags is a failure and is not written."""
    import pydicom

    from radstream.pipeline.deid import check_identity, deidentify_bytes

    entries: list[dict[str, Any]] = []
    for src, dst, named in plan_copies(inputs, out):
        entry: dict[str, Any] = {"input": str(src), "output": None, "status": "skipped", "warnings": [], "error": None}
        entries.append(entry)
        try:
            if not _looks_like_dicom(src):
                if named:
                    entry.update(status="failed", error="not a DICOM file (no 'DICM' at byte 128)")
                continue
            data = deidentify_bytes(src.read_bytes(), key)
            check = check_identity(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True))
            if check.reasons:
                entry.update(status="failed", error="still carries identity after de-identification: "
                             + "; ".join(check.reasons))
                continue
            _write_atomically(dst, data)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            continue
        entry.update(status="deidentified", output=str(dst), warnings=check.warnings)
    counts = {s: sum(e["status"] == s for e in entries) for s in ("deidentified", "skipped", "failed")}
    failed = counts["failed"] > 0
    return {
        "ok": not failed,
        "out": str(out),
        "counts": counts,
        "files": entries,
        "error": f"{counts['failed']} file(s) failed" if failed else None,
    }
