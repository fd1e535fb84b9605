import boto3
import pytest
from moto import mock_aws

from tests.support.aws import record_mutations
from radstream.aws.athena import delete_workgroup, ensure_workgroup, workgroup_arn, workgroup_drift

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ARN = workgroup_arn("us-east-1", "123456789012", "t1-analytics")
OUT = "s3://t1-telemetry-123456789012/athena-results/"


@pytest.fixture
def athena():
    with mock_aws():
        yield boto3.client("athena", region_name="us-east-1")


def test_create_no_op_repair_delete(athena):
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["missing"]
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is True
    config = athena.get_work_group(WorkGroup="t1-analytics")["WorkGroup"]["Configuration"]
    assert config["ResultConfiguration"]["OutputLocation"] == OUT

    seen = record_mutations(athena)
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is False
    assert seen == []

    # Someone points the workgroup elsewhere (re-created by hand: moto has no UpdateWorkGroup).
    athena.delete_work_group(WorkGroup="t1-analytics")
    athena.create_work_group(Name="t1-analytics", Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
                             Configuration={"ResultConfiguration": {"OutputLocation": "s3://someone-else/"}})
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["configuration"]
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is True
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == []

    delete_workgroup(athena, "t1-analytics")
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["missing"]
    delete_workgroup(athena, "t1-analytics")
