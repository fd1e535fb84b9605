import json

import boto3
import pytest
from moto import mock_aws

from radstream.aws.ecr import delete_repository, ensure_repository, lifecycle_policy, repository_drift, repository_uri
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}


@pytest.fixture
def ecr():
    with mock_aws():
        yield boto3.client("ecr", region_name="us-east-1")


def test_create_no_op_repair_delete(ecr):
    assert repository_drift(ecr, "t1-triton", TAGS) == ["missing"]
    assert ensure_repository(ecr, "t1-triton", TAGS) is True
    repo = ecr.describe_repositories(repositoryNames=["t1-triton"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    assert repository_uri(ecr, "t1-triton") == repo["repositoryUri"]
    policy = json.loads(ecr.get_lifecycle_policy(repositoryName="t1-triton")["lifecyclePolicyText"])
    assert policy["rules"][0]["selection"]["countNumber"] == 10

    seen = record_mutations(ecr)
    assert ensure_repository(ecr, "t1-triton", TAGS) is False
    assert seen == []

    ecr.put_image_scanning_configuration(repositoryName="t1-triton", imageScanningConfiguration={"scanOnPush": False})
    ecr.delete_lifecycle_policy(repositoryName="t1-triton")
    assert repository_drift(ecr, "t1-triton", TAGS) == ["scan-on-push", "lifecycle"]
    assert ensure_repository(ecr, "t1-triton", TAGS) is True
    assert repository_drift(ecr, "t1-triton", TAGS) == []

    ecr.put_image(repositoryName="t1-triton", imageManifest=json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": []}),
                  imageTag="v1")
    delete_repository(ecr, "t1-triton")  # removes images too
    assert repository_drift(ecr, "t1-triton", TAGS) == ["missing"]
    delete_repository(ecr, "t1-triton")
    with pytest.raises(LookupError, match="phase 0"):
        repository_uri(ecr, "t1-triton")


def test_lifecycle_keeps_the_newest_n():
    rule = lifecycle_policy(3)["rules"][0]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}
    assert rule["action"] == {"type": "expire"}
