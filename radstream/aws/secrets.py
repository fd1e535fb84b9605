"""The deployment's de-identification key, kept in Secrets Manager: random bytes that key the
pseudonyms (UIDs, study ids, date shifts), so one study de-identified on any day gets the same ones.

Secrets Manager never deletes at once: DeleteSecret schedules the deletion after a recovery window
(7 to 30 days). Meanwhile the value cannot be read, the name cannot be taken by a new secret
(CreateSecret is refused with InvalidRequestException) and nothing is billed. Teardown schedules
the longest window and `ensure_key` restores a scheduled key, so a deployment torn down and brought
back within 30 days keeps its pseudonyms."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from radstream.aws import error_code, unless_absent
from radstream.aws.tags import from_list, missing, to_list
from radstream.errors import RadstreamError

KEY_BYTES = 32
RECOVERY_WINDOW_DAYS = 30
ABSENT = "ResourceNotFoundException"
SCHEDULED = "scheduled for deletion"


def describe_key(client: Any, name: str) -> dict[str, Any] | None:
    return unless_absent(client.describe_secret, ABSENT, SecretId=name)


def key_drift(client: Any, name: str, tags: Mapping[str, str]) -> list[str]:
    found = describe_key(client, name)
    if found is None:
        return ["missing"]
    drift = [SCHEDULED] if found.get("DeletedDate") else []
    if missing(from_list(found.get("Tags", [])), tags):
        drift.append("tags")
    return drift


def ensure_key(client: Any, name: str, tags: Mapping[str, str]) -> bool:
    """A key under `name`: created with fresh random bytes, or restored when scheduled for deletion
    (a new one would change every pseudonym). True when anything changed."""
    drift = key_drift(client, name, tags)
    if "missing" in drift:
        client.create_secret(Name=name, SecretBinary=os.urandom(KEY_BYTES), Tags=to_list(tags),
                             Description="RadStream de-identification key: keys the pseudonyms; never logged")
        return True
    if SCHEDULED in drift:
        client.restore_secret(SecretId=name)
    if "tags" in drift:
        client.tag_resource(SecretId=name, Tags=to_list(tags))
    return bool(drift)


def read_key(client: Any, name: str) -> bytes:
    """The key's bytes; RadstreamError saying what to do when there is none to read."""
    try:
        value = client.get_secret_value(SecretId=name)
    except Exception as exc:
        code = error_code(exc)
        if code not in (ABSENT, "InvalidRequestException"):
            raise
        state = "is scheduled for deletion" if code == "InvalidRequestException" else "does not exist"
        raise RadstreamError(f"the deployment's de-identification key {name} {state}",
                             hint="run `radstream up` (phase 0 creates or restores it), or pass --key-file") from None
    return bytes(value["SecretBinary"])


def schedule_key_deletion(client: Any, name: str) -> None:
    """Schedule the key's deletion with the longest recovery window; quiet when it is gone or
    already scheduled."""
    found = describe_key(client, name)
    if found is None or found.get("DeletedDate"):
        return
    unless_absent(client.delete_secret, ABSENT, SecretId=name, RecoveryWindowInDays=RECOVERY_WINDOW_DAYS)
