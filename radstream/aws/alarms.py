"""The SNS topic alarms notify, the CloudWatch alarms and dashboard, and the AWS Budgets budget:
drift, ensure and quiet delete for each (radstream.aws's conventions). What they hold comes from
radstream.monitoring."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from radstream.aws import error_code, make_arn, unless_absent
from radstream.aws.tags import from_list, missing, to_list


def topic_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "sns", region, account_id, name)


# -- the topic --------------------------------------------------------------------------------------
def topic_drift(sns: Any, arn: str, tags: Mapping[str, str], policy: Mapping[str, Any], email: str | None) -> list[str]:
    found = unless_absent(sns.get_topic_attributes, "NotFound", TopicArn=arn)
    if found is None:
        return ["missing"]
    drift = []
    if json.loads(found["Attributes"].get("Policy") or "{}") != policy:
        drift.append("policy")
    if missing(from_list(sns.list_tags_for_resource(ResourceArn=arn)["Tags"]), tags):
        drift.append("tags")
    if email and not _subscribed(sns, arn, email):
        drift.append(f"subscribe {email}")
    return drift


def _subscribed(sns: Any, arn: str, email: str) -> bool:
    """A subscription of `email`, confirmed or still pending (AWS mails the link once)."""
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=arn)
    return any(s["Protocol"] == "email" and s["Endpoint"] == email for page in pages for s in page["Subscriptions"])


def ensure_topic(sns: Any, arn: str, tags: Mapping[str, str], policy: Mapping[str, Any], email: str | None) -> bool:
    drift = topic_drift(sns, arn, tags, policy, email)
    if "missing" in drift:
        # CreateTopic is refused for an existing topic with other tags: read first (above), then create.
        sns.create_topic(Name=arn.rsplit(":", 1)[1], Tags=to_list(tags), Attributes={"Policy": json.dumps(policy)})
        drift = ["created"] + ([f"subscribe {email}"] if email else [])
    if "policy" in drift:
        sns.set_topic_attributes(TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(policy))
    if "tags" in drift:
        sns.tag_resource(ResourceArn=arn, Tags=to_list(tags))
    if email and f"subscribe {email}" in drift:
        sns.subscribe(TopicArn=arn, Protocol="email", Endpoint=email)
    return bool(drift)


def delete_topic(sns: Any, arn: str) -> None:
    """Its subscriptions go with it; quiet when it is gone."""
    unless_absent(sns.delete_topic, "NotFound", TopicArn=arn)


# -- alarms -----------------------------------------------------------------------------------------
def _alarm(cw: Any, name: str) -> dict[str, Any] | None:
    found = cw.describe_alarms(AlarmNames=[name], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    return found[0] if found else None


def alarm_drift(cw: Any, request: Mapping[str, Any], tags: Mapping[str, str]) -> list[str]:
    found = _alarm(cw, request["AlarmName"])
    if found is None:
        return ["missing"]
    drift = [key for key, wanted in request.items() if found.get(key) != wanted]
    if missing(from_list(cw.list_tags_for_resource(ResourceARN=found["AlarmArn"])["Tags"]), tags):
        drift.append("tags")
    return drift


def ensure_alarm(cw: Any, request: Mapping[str, Any], tags: Mapping[str, str]) -> bool:
    drift = alarm_drift(cw, request, tags)
    if drift and drift != ["tags"]:
        cw.put_metric_alarm(**request, Tags=to_list(tags))  # tags apply on creation only
    found = _alarm(cw, request["AlarmName"]) if "tags" in drift and "missing" not in drift else None
    if found is not None:
        cw.tag_resource(ResourceARN=found["AlarmArn"], Tags=to_list(tags))
    return bool(drift)


def delete_alarms(cw: Any, names: list[str]) -> None:
    """The named alarms that exist (DeleteAlarms refuses the whole call over one missing name)."""
    present = [a["AlarmName"] for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"]]
    if present:
        cw.delete_alarms(AlarmNames=present)


# -- the dashboard ----------------------------------------------------------------------------------
_NO_DASHBOARD = "ResourceNotFound"


def dashboard_drift(cw: Any, name: str, body: str) -> list[str]:
    found = unless_absent(cw.get_dashboard, _NO_DASHBOARD, DashboardName=name)
    if found is None:
        return ["missing"]
    return [] if json.loads(found["DashboardBody"]) == json.loads(body) else ["widgets"]


def ensure_dashboard(cw: Any, name: str, body: str) -> bool:
    drift = dashboard_drift(cw, name, body)
    if drift:
        cw.put_dashboard(DashboardName=name, DashboardBody=body)
    return bool(drift)


def delete_dashboard(cw: Any, name: str) -> None:
    if dashboard_drift(cw, name, "{}") != ["missing"]:
        unless_absent(cw.delete_dashboards, _NO_DASHBOARD, DashboardNames=[name])


# -- the budget -------------------------------------------------------------------------------------
_NO_BUDGET = "NotFoundException"


def _notifications(budgets: Any, account_id: str, name: str) -> list[dict[str, Any]]:
    found = budgets.describe_notifications_for_budget(AccountId=account_id, BudgetName=name)["Notifications"]
    return [{k: n[k] for k in ("NotificationType", "ComparisonOperator", "Threshold", "ThresholdType") if k in n}
            for n in found]


def budget_drift(budgets: Any, account_id: str, budget: Mapping[str, Any],
                 notifications: list[dict[str, Any]]) -> list[str]:
    found = unless_absent(budgets.describe_budget, _NO_BUDGET, AccountId=account_id, BudgetName=budget["BudgetName"])
    if found is None:
        return ["missing"]
    current = found["Budget"]
    drift = [key for key in ("BudgetLimit", "CostFilters", "TimeUnit", "BudgetType")
             if _same_shape(current.get(key)) != _same_shape(budget[key])]
    have = _notifications(budgets, account_id, budget["BudgetName"])
    if any(_same_shape(n["Notification"]) not in [_same_shape(h) for h in have] for n in notifications):
        drift.append("notifications")
    return drift


def _same_shape(value: Any) -> Any:
    """Budgets answers amounts as "100.0" for "100.00" and thresholds as floats: compare as numbers."""
    if isinstance(value, Mapping):
        return {k: _same_shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_same_shape(v) for v in value]
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


def ensure_budget(budgets: Any, account_id: str, budget: Mapping[str, Any], notifications: list[dict[str, Any]]) -> bool:
    """Create the budget with its notifications, or replace it when it drifted (a budget's
    notifications change one by one; replacing keeps this simple and loses only its history of alerts)."""
    drift = budget_drift(budgets, account_id, budget, notifications)
    if not drift:
        return False
    if "missing" not in drift:
        delete_budget(budgets, account_id, budget["BudgetName"])
    budgets.create_budget(AccountId=account_id, Budget=dict(budget), NotificationsWithSubscribers=notifications)
    return True


def delete_budget(budgets: Any, account_id: str, name: str) -> None:
    try:
        budgets.delete_budget(AccountId=account_id, BudgetName=name)
    except Exception as exc:
        if error_code(exc) != _NO_BUDGET:
            raise
