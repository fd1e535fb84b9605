"""GuardDuty: the account's detector in the region, and a summary of what it found.

A region holds at most one detector per account, so one that exists is adopted, not duplicated, and
only a detector RadStream created (it carries the deployment tag) is ever deleted."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from radstream.aws import unless_absent
from radstream.names import TAG_DEPLOYMENT

# What GuardDuty answers for a detector id this account does not have.
ABSENT = "BadRequestException"
# GetFindings takes at most this many ids at a time.
GET_FINDINGS_BATCH = 50
# GuardDuty's own bands: 7.0–8.9 high, 4.0–6.9 medium, 1.0–3.9 low.
HIGH_SEVERITY, MEDIUM_SEVERITY = 7.0, 4.0


def detector_id(client: Any) -> str | None:
    """The region's detector, whoever made it."""
    return next((i for page in client.get_paginator("list_detectors").paginate() for i in page["DetectorIds"]), None)


def ensure_detector(client: Any, tags: Mapping[str, str]) -> tuple[str, bool]:
    """(detector id, created): the region's detector when there is one, else a new enabled one with `tags`."""
    existing = detector_id(client)
    if existing:
        return existing, False
    return client.create_detector(Enable=True, Tags=dict(tags))["DetectorId"], True


def deployment_detector(client: Any, deployment: str) -> str | None:
    """The region's detector if this deployment created it (it carries the deployment's tag)."""
    found = detector_id(client)
    detector = unless_absent(client.get_detector, ABSENT, DetectorId=found) if found else None
    return found if detector and (detector.get("Tags") or {}).get(TAG_DEPLOYMENT) == deployment else None


def delete_detector(client: Any, deployment: str) -> bool:
    """Delete the region's detector if this deployment created it; True when deleted. Quiet when gone."""
    found = deployment_detector(client, deployment)
    return found is not None and unless_absent(client.delete_detector, ABSENT, DetectorId=found) is not None


def _severity_band(severity: float) -> str:
    if severity >= HIGH_SEVERITY:
        return "high"
    return "medium" if severity >= MEDIUM_SEVERITY else "low"


def _resource_name(resource: Mapping[str, Any]) -> str:
    """The finding's resource as a person would name it: its type and, when known, its id."""
    kind = resource.get("ResourceType", "unknown")
    identifiers = (
        resource.get("InstanceDetails", {}).get("InstanceId"),
        resource.get("AccessKeyDetails", {}).get("UserName"),
        resource.get("EksClusterDetails", {}).get("Name"),
        next((bucket.get("Name") for bucket in resource.get("S3BucketDetails") or []), None),
    )
    identifier = next((i for i in identifiers if i), None)
    return f"{kind} {identifier}" if identifier else kind


def summarize_findings(detector_id: str, findings: Iterable[Mapping[str, Any]], limit: int = 20) -> dict[str, Any]:
    """Counts by severity band and the `limit` most severe findings, from GetFindings-shaped dicts. Pure."""
    ranked = sorted(findings, key=lambda f: float(f.get("Severity", 0)), reverse=True)
    by_severity = {"high": 0, "medium": 0, "low": 0}
    for finding in ranked:
        by_severity[_severity_band(float(finding.get("Severity", 0)))] += 1
    top = [{"type": f.get("Type"), "severity": float(f.get("Severity", 0)), "title": f.get("Title"),
            "resource": _resource_name(f.get("Resource") or {})} for f in ranked[:limit]]
    return {"detector_id": detector_id, "findings": len(ranked), "by_severity": by_severity, "top": top}


def findings_summary(client: Any, detector_id: str, limit: int = 20) -> dict[str, Any]:
    """The detector's findings that are not archived, summarized (summarize_findings)."""
    not_archived = {"Criterion": {"service.archived": {"Eq": ["false"]}}}
    pages = client.get_paginator("list_findings").paginate(DetectorId=detector_id, FindingCriteria=not_archived)
    ids = [i for page in pages for i in page["FindingIds"]]
    findings = [finding for start in range(0, len(ids), GET_FINDINGS_BATCH)
                for finding in client.get_findings(DetectorId=detector_id,
                                                   FindingIds=ids[start:start + GET_FINDINGS_BATCH])["Findings"]]
    return summarize_findings(detector_id, findings, limit)
