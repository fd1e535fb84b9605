"""Study ids: what makes one safe to use verbatim in an S3 key, and the id a study gets from a hash
of its object key when it brings no valid one. Plain Python: every handler imports this, so it must
cost nothing at a cold start."""

from __future__ import annotations

import hashlib
import re

STUDY_ID_MAX_LENGTH = 64
# ASCII only (no look-alike unicode), starts with a letter or digit (no ".", "..", "-x" names).
_STUDY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_KEY_ID_HASH_LENGTH = 24  # 96 bits: no two keys of one deployment share an id by chance


def check_study_id(value: object) -> str:
    """Return `value` if it is a safe study id (usable verbatim in an S3 key), else raise ValueError."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not 1 <= len(value) <= STUDY_ID_MAX_LENGTH:
        raise ValueError(f"must be 1 to {STUDY_ID_MAX_LENGTH} characters")
    if not _STUDY_ID.fullmatch(value) or ".." in value:
        raise ValueError(
            "may hold only ASCII letters, digits, '-', '_' and '.', must start with a letter or digit "
            "and must not contain '..'"
        )
    return value


def is_valid_study_id(value: object) -> bool:
    try:
        check_study_id(value)
    except ValueError:
        return False
    return True


def key_sha256(key: str) -> str:
    """The object key as telemetry and ids may carry it: file names are often built from the patient's
    name or record number, so the key's text never leaves our own buckets."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_study_id(key: str) -> str:
    """The id of a study that brought no valid one of its own (unreadable content, a bad sidecar):
    derived from a hash of its object key, never from the key's text, and the same on every run."""
    return check_study_id(f"KEY-{key_sha256(key)[:_KEY_ID_HASH_LENGTH]}")
