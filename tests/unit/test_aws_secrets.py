"""The de-identification key's helpers against moto, with Secrets Manager answering as AWS does
(tests/unit/conftest.py): a deleted secret is only scheduled for deletion, its name stays taken
and its value unreadable; `ensure_key` restores it, so the pseudonyms survive a teardown and up."""

import boto3
import pytest
from moto import mock_aws

from radstream.aws import error_code
from radstream.aws.inventory import deployment_resources
from radstream.aws.secrets import (
    KEY_BYTES,
    RECOVERY_WINDOW_DAYS,
    ensure_key,
    key_drift,
    read_key,
    schedule_key_deletion,
)
from radstream.errors import RadstreamError
from tests.support.aws import record_mutations

REGION = "us-east-1"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
NAME = "t1-deid-key"


@pytest.fixture
def secrets():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def test_a_key_is_made_once_tagged_and_read_back(secrets):
    assert key_drift(secrets, NAME, TAGS) == ["missing"]
    assert ensure_key(secrets, NAME, TAGS) is True
    key = read_key(secrets, NAME)
    assert len(key) == KEY_BYTES
    described = secrets.describe_secret(SecretId=NAME)
    assert {t["Key"]: t["Value"] for t in described["Tags"]} == TAGS

    seen = record_mutations(secrets)
    assert ensure_key(secrets, NAME, TAGS) is False and seen == []
    assert read_key(secrets, NAME) == key  # never replaced: a new key would change every pseudonym


def test_a_key_scheduled_for_deletion_is_restored_with_the_same_bytes(secrets):
    ensure_key(secrets, NAME, TAGS)
    key = read_key(secrets, NAME)
    schedule_key_deletion(secrets, NAME)
    schedule_key_deletion(secrets, NAME)  # already scheduled: quiet
    described = secrets.describe_secret(SecretId=NAME)
    assert (described["DeletedDate"] - described["CreatedDate"]).days in (RECOVERY_WINDOW_DAYS - 1, RECOVERY_WINDOW_DAYS)
    with pytest.raises(RadstreamError, match="scheduled for deletion"):
        read_key(secrets, NAME)
    with pytest.raises(Exception) as refused:  # what AWS answers a create under the taken name
        secrets.create_secret(Name=NAME, SecretBinary=b"x" * KEY_BYTES)
    assert error_code(refused.value) == "InvalidRequestException"

    assert key_drift(secrets, NAME, TAGS) == ["scheduled for deletion"]
    assert ensure_key(secrets, NAME, TAGS) is True
    assert read_key(secrets, NAME) == key and key_drift(secrets, NAME, TAGS) == []


def test_a_missing_key_says_what_to_do_and_deleting_it_is_quiet(secrets):
    with pytest.raises(RadstreamError, match="does not exist") as missing:
        read_key(secrets, NAME)
    assert "radstream up" in str(missing.value) and "--key-file" in str(missing.value)
    schedule_key_deletion(secrets, NAME)


def test_the_inventory_lists_a_live_key_and_not_a_scheduled_one(secrets):
    def client(service: str):
        return secrets if service == "secretsmanager" else boto3.client(service, region_name=REGION)

    ensure_key(secrets, NAME, TAGS)
    ensure_key(secrets, "t2-deid-key", {**TAGS, "radstream:deployment": "t2"})
    assert [r["service"] for r in deployment_resources(client, "t1")] == ["secretsmanager"]
    schedule_key_deletion(secrets, NAME)
    assert deployment_resources(client, "t1") == []  # not billed, not readable: gone for teardown
