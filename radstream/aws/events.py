"""EventBridge rules on the default bus, their targets, and the log group that records failed
executions (EventBridge needs a CloudWatch Logs resource policy to write there)."""

from __future__ import annotations

import json
from typing import Any

from radstream.aws import error_code, make_arn, unless_absent
from radstream.aws.tags import from_list, missing, to_list

SIDECAR_WILDCARD = "*.json"


def rule_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    """A rule on the default bus."""
    return make_arn(partition, "events", region, account_id, f"rule/{name}")


def image_uploaded_pattern(bucket: str) -> dict[str, Any]:
    """S3 Object Created events for every object of the images bucket except JSON sidecars, whatever
    its name: the content decides what a study is (ValidateInput quarantines what it cannot read),
    so a DICOM without an extension, `X.Png` or `X.tif` is never silently left out. A pattern cannot
    AND "under incoming/" with "not *.json" on the one key field, so the pattern excludes sidecars
    and ValidateInput refuses, with a recorded failure, any object outside incoming/."""
    return {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]},
                   "object": {"key": [{"anything-but": {"wildcard": SIDECAR_WILDCARD}}]}},
    }


def execution_failed_pattern(state_machine_arn: str) -> dict[str, Any]:
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [state_machine_arn]},
    }


# What RadStream sets on a target, so what drifts when someone changes it.
TARGET_FIELDS = ("Id", "Arn", "RoleArn", "RetryPolicy", "DeadLetterConfig")


def _target_view(target: dict[str, Any]) -> dict[str, Any]:
    return {k: target[k] for k in TARGET_FIELDS if k in target}


def rule_drift(events: Any, name: str, pattern: dict, targets: list[dict], tags: dict[str, str]) -> list[str]:
    """targets: [{"Id", "Arn"[, "RoleArn", "RetryPolicy", "DeadLetterConfig"]}]."""
    try:
        rule = events.describe_rule(Name=name)
    except Exception as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return ["missing"]
        raise
    drift = []
    if json.loads(rule.get("EventPattern") or "{}") != pattern or rule.get("State") != "ENABLED":
        drift.append("pattern")
    current = [_target_view(t) for t in events.list_targets_by_rule(Rule=name)["Targets"]]
    if sorted(current, key=lambda t: t["Id"]) != sorted(targets, key=lambda t: t["Id"]):
        drift.append("targets")
    if missing(from_list(events.list_tags_for_resource(ResourceARN=rule["Arn"])["Tags"]), tags):
        drift.append("tags")
    return drift


def rule_parameters(name: str, pattern: dict, tags: dict[str, str], description: str = "") -> dict[str, Any]:
    """PutRule's parameters, the event pattern as an object (PutRule takes it as JSON text)."""
    return {"Name": name, "EventPattern": pattern, "State": "ENABLED", "Description": description,
            "Tags": to_list(tags)}


def ensure_rule(events: Any, name: str, pattern: dict, targets: list[dict], tags: dict[str, str],
                description: str = "") -> bool:
    drift = rule_drift(events, name, pattern, targets, tags)
    if "missing" in drift or "pattern" in drift:
        events.put_rule(**rule_parameters(name, pattern, tags, description) | {"EventPattern": json.dumps(pattern)})
    if "missing" in drift or "targets" in drift:
        wanted = {t["Id"] for t in targets}
        stale = [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"] if t["Id"] not in wanted]
        if stale:
            events.remove_targets(Rule=name, Ids=stale)
        events.put_targets(Rule=name, Targets=targets)
    if "tags" in drift:
        events.tag_resource(ResourceARN=events.describe_rule(Name=name)["Arn"], Tags=to_list(tags))
    return bool(drift)


def delete_rule(events: Any, name: str) -> None:
    """Remove its targets, then the rule; quiet when gone."""
    try:
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name)["Targets"]]
        if ids:
            events.remove_targets(Rule=name, Ids=ids)
        events.delete_rule(Name=name)
    except Exception as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise


def log_group_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "logs", region, account_id, f"log-group:{name}")


def log_group_drift(logs: Any, name: str, tags: dict[str, str], retention_days: int) -> list[str]:
    groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    group = next((g for g in groups if g["logGroupName"] == name), None)
    if group is None:
        return ["missing"]
    drift = [] if group.get("retentionInDays") == retention_days else ["retention"]
    arn = group["arn"].removesuffix(":*")
    if missing(logs.list_tags_for_resource(resourceArn=arn).get("tags", {}), tags):
        drift.append("tags")
    return drift


def ensure_log_group(logs: Any, name: str, tags: dict[str, str], retention_days: int = 30) -> bool:
    drift = log_group_drift(logs, name, tags, retention_days)
    if "missing" in drift:
        logs.create_log_group(logGroupName=name, tags=tags)
        drift = ["retention"]
    if "retention" in drift:
        logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
    if "tags" in drift:
        group = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
        logs.tag_resource(resourceArn=group["arn"].removesuffix(":*"), tags=tags)
    return bool(drift)


def delete_log_group(logs: Any, name: str) -> None:
    unless_absent(logs.delete_log_group, "ResourceNotFoundException", logGroupName=name)


def delete_log_stream(logs: Any, group: str, stream: str) -> None:
    """One stream of a group others share; quiet when the stream or the group is gone."""
    unless_absent(logs.delete_log_stream, "ResourceNotFoundException", logGroupName=group, logStreamName=stream)


def logs_resource_policy_drift(logs: Any, name: str, document: dict) -> list[str]:
    policies = logs.describe_resource_policies()["resourcePolicies"]
    current = next((p for p in policies if p["policyName"] == name), None)
    if current is None:
        return ["missing"]
    return [] if json.loads(current["policyDocument"]) == document else ["policy"]


def ensure_logs_resource_policy(logs: Any, name: str, document: dict) -> bool:
    """An account-level CloudWatch Logs resource policy (how EventBridge gets write access)."""
    if not logs_resource_policy_drift(logs, name, document):
        return False
    logs.put_resource_policy(policyName=name, policyDocument=json.dumps(document))
    return True


def delete_logs_resource_policy(logs: Any, name: str) -> None:
    unless_absent(logs.delete_resource_policy, "ResourceNotFoundException", policyName=name)
