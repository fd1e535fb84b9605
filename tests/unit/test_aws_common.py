import boto3
from moto import mock_aws

from radstream.aws import error_code
from tests.support.aws import record_mutations


def test_mutation_counting_sees_only_successful_writes():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        seen = record_mutations(s3)
        s3.list_buckets()
        s3.create_bucket(Bucket="radstream-mutations")
        s3.head_bucket(Bucket="radstream-mutations")
        try:
            s3.delete_bucket(Bucket="radstream-already-gone")
        except Exception as exc:
            assert error_code(exc) == "NoSuchBucket"
        assert seen == ["CreateBucket"]
        try:
            s3.head_bucket(Bucket="radstream-absent")
        except Exception as exc:
            assert error_code(exc) == "404"
    assert error_code(ValueError("not a client error")) == ""


def test_substitute_leaves_jsonpath_alone_and_rejects_unknown_names():
    import pytest

    from radstream.templating import substitute

    assert substitute('{"a": "${X}", "p": "$.failure.${X}"}', {"X": "v"}) == '{"a": "v", "p": "$.failure.v"}'
    with pytest.raises(KeyError):
        substitute("${Unknown}", {})
