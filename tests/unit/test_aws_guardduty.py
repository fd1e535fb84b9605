import boto3
import pytest
from moto import mock_aws

from radstream.aws.guardduty import delete_detector, ensure_detector, summarize_findings
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "3"}


@pytest.fixture
def guardduty():
    with mock_aws():
        yield boto3.client("guardduty", region_name="us-east-1")


def test_an_existing_detector_is_adopted_untouched(guardduty):
    theirs = guardduty.create_detector(Enable=True)["DetectorId"]
    seen = record_mutations(guardduty)
    assert ensure_detector(guardduty, TAGS) == (theirs, False)
    assert seen == []
    assert guardduty.list_detectors()["DetectorIds"] == [theirs]


def test_a_detector_is_created_enabled_and_tagged_when_there_is_none(guardduty):
    detector_id, created = ensure_detector(guardduty, TAGS)
    assert created is True
    detector = guardduty.get_detector(DetectorId=detector_id)
    assert detector["Status"] == "ENABLED" and detector["Tags"] == TAGS
    assert ensure_detector(guardduty, TAGS) == (detector_id, False)


def test_delete_removes_only_the_deployments_own_detector_and_is_quiet_when_gone(guardduty):
    ensure_detector(guardduty, TAGS)
    assert delete_detector(guardduty, "t1") is True
    assert guardduty.list_detectors()["DetectorIds"] == []
    assert delete_detector(guardduty, "t1") is False

    theirs = guardduty.create_detector(Enable=True, Tags={"team": "security"})["DetectorId"]
    assert delete_detector(guardduty, "t1") is False
    guardduty.delete_detector(DetectorId=theirs)
    other = guardduty.create_detector(Enable=True, Tags={**TAGS, "radstream:deployment": "t2"})["DetectorId"]
    assert delete_detector(guardduty, "t1") is False  # another deployment's
    assert guardduty.list_detectors()["DetectorIds"] == [other]


def finding(kind: str, severity: float, resource: dict) -> dict:
    return {"Id": kind, "Type": kind, "Severity": severity, "Title": f"{kind} seen", "Resource": resource}


def test_findings_are_counted_by_band_and_the_most_severe_come_first():
    findings = [
        finding("Recon:EC2/Portscan", 2.0, {"ResourceType": "Instance", "InstanceDetails": {"InstanceId": "i-1"}}),
        finding("UnauthorizedAccess:IAMUser/MaliciousIPCaller", 5.0,
                {"ResourceType": "AccessKey", "AccessKeyDetails": {"UserName": "ops"}}),
        finding("CryptoCurrency:EC2/BitcoinTool.B", 8.0, {"ResourceType": "Instance", "InstanceDetails": {"InstanceId": "i-2"}}),
        finding("Policy:S3/BucketBlockPublicAccessDisabled", 7.0,
                {"ResourceType": "S3Bucket", "S3BucketDetails": [{"Name": "t1-images"}]}),
        finding("Discovery:Kubernetes/SuccessfulAnonymousAccess", 4.0, {"ResourceType": "EKSCluster"}),
    ]
    summary = summarize_findings("d-1", findings, limit=3)
    assert summary["detector_id"] == "d-1" and summary["findings"] == 5
    assert summary["by_severity"] == {"high": 2, "medium": 2, "low": 1}
    assert [f["severity"] for f in summary["top"]] == [8.0, 7.0, 5.0]
    assert summary["top"][0] == {"type": "CryptoCurrency:EC2/BitcoinTool.B", "severity": 8.0,
                                 "title": "CryptoCurrency:EC2/BitcoinTool.B seen", "resource": "Instance i-2"}
    assert [f["resource"] for f in summary["top"][1:]] == ["S3Bucket t1-images", "AccessKey ops"]
    assert summarize_findings("d-1", findings)["top"][-1]["resource"] == "Instance i-1"
    assert summarize_findings("d-1", [])["by_severity"] == {"high": 0, "medium": 0, "low": 0}
