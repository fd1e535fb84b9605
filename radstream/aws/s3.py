"""S3 buckets: encrypted, versioned, private, TLS-only, optionally announcing uploads to EventBridge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from radstream.aws import error_code, make_arn
from radstream.aws.tags import from_list, missing, to_list

_GONE = {"NoSuchBucket", "404", "NotFound"}
_PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}


def bucket_arn(bucket: str, partition: str = "aws") -> str:
    return make_arn(partition, "s3", "", "", bucket)


def tls_only_policy(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """Deny every request made without TLS."""
    resource = bucket_arn(bucket, partition)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [resource, f"{resource}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def bucket_exists(s3: Any, name: str) -> bool:
    try:
        s3.head_bucket(Bucket=name)
        return True
    except Exception as exc:  # botocore ClientError
        if error_code(exc) in _GONE:
            return False
        raise


def _read(call: Any, absent_codes: set[str], **kwargs: Any) -> dict[str, Any] | None:
    """A bucket sub-resource, or None when it is not configured."""
    try:
        return call(**kwargs)
    except Exception as exc:
        if error_code(exc) in absent_codes:
            return None
        raise


def bucket_drift(s3: Any, name: str, tags: dict[str, str], eventbridge: bool = False,
                 partition: str = "aws") -> list[str]:
    """What differs from the desired bucket; ["missing"] when it does not exist."""
    if not bucket_exists(s3, name):
        return ["missing"]
    drift = []
    enc = _read(s3.get_bucket_encryption, {"ServerSideEncryptionConfigurationNotFoundError"}, Bucket=name)
    rules = (enc or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    if not any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for r in rules):
        drift.append("encryption")
    if s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
        drift.append("versioning")
    pab = _read(s3.get_public_access_block, {"NoSuchPublicAccessBlockConfiguration"}, Bucket=name)
    if (pab or {}).get("PublicAccessBlockConfiguration") != _PUBLIC_ACCESS_BLOCK:
        drift.append("public-access-block")
    policy = _read(s3.get_bucket_policy, {"NoSuchBucketPolicy"}, Bucket=name)
    if policy is None or json.loads(policy["Policy"]) != tls_only_policy(name, partition):
        drift.append("policy")
    if eventbridge and "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket=name):
        drift.append("eventbridge")
    if missing(_bucket_tags(s3, name), tags):
        drift.append("tags")
    return drift


def _bucket_tags(s3: Any, name: str) -> dict[str, str]:
    tagging = _read(s3.get_bucket_tagging, {"NoSuchTagSet"}, Bucket=name)
    return from_list((tagging or {}).get("TagSet", []))


def ensure_bucket(s3: Any, name: str, region: str, tags: dict[str, str], eventbridge: bool = False,
                  partition: str = "aws") -> bool:
    """Create or repair the bucket; returns True when anything was changed."""
    drift = bucket_drift(s3, name, tags, eventbridge, partition)
    if "missing" in drift:
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":  # us-east-1 rejects an explicit location constraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**kwargs)
        drift = ["encryption", "versioning", "public-access-block", "policy", "tags"]
        drift += ["eventbridge"] if eventbridge else []
    for item in drift:
        _REPAIRS[item](s3, name, tags, partition)
    return bool(drift)


def _put_encryption(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": [rule]})


def _put_versioning(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def _put_public_access_block(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK)


def _put_policy(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps(tls_only_policy(name, partition)))


def _put_eventbridge(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    # The put replaces the whole configuration: keep any other notifications already there.
    current = s3.get_bucket_notification_configuration(Bucket=name)
    config = {k: v for k, v in current.items() if k != "ResponseMetadata"}
    config["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=name, NotificationConfiguration=config)


def _put_tags(s3: Any, name: str, tags: dict[str, str], partition: str) -> None:
    # PutBucketTagging replaces the set: merge so tags added by others survive.
    merged = {**_bucket_tags(s3, name), **tags}
    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": to_list(merged)})


_REPAIRS = {
    "encryption": _put_encryption,
    "versioning": _put_versioning,
    "public-access-block": _put_public_access_block,
    "policy": _put_policy,
    "eventbridge": _put_eventbridge,
    "tags": _put_tags,
}


def delete_versions(s3: Any, name: str, prefix: str = "") -> int:
    """Delete every object version and delete marker under `prefix`; returns how many were removed.
    Each round lists from the start again: paging on by markers while deleting what was listed skips
    versions on moto (1,000 of 1,300 went), and a fresh listing is right on S3 as well."""
    removed = 0
    while True:
        page = s3.list_object_versions(Bucket=name, Prefix=prefix)
        keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if not keys:
            return removed
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            s3.delete_objects(Bucket=name, Delete={"Objects": keys[start : start + 1000], "Quiet": True})
        removed += len(keys)


def delete_bucket(s3: Any, name: str) -> None:
    """Empty (all versions) and delete the bucket; quiet when it is already gone."""
    try:
        delete_versions(s3, name)
        s3.delete_bucket(Bucket=name)
    except Exception as exc:
        if error_code(exc) not in _GONE:
            raise


def list_objects(s3: Any, bucket: str, prefix: str = "") -> Iterator[dict[str, Any]]:
    """Every object under the prefix (ListObjectsV2 entries), page by page as they are consumed: a
    caller that stops early lists no further."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        yield from page.get("Contents", [])


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def delete_object(s3: Any, bucket: str, key: str) -> None:
    """A plain delete (a delete marker in a versioned bucket); quiet when the bucket is gone."""
    try:
        s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        if error_code(exc) not in _GONE:
            raise
