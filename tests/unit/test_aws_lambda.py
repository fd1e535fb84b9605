import base64
import hashlib
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from radstream.aws.lambda_ import (
    RUNTIME,
    code_sha256,
    delete_function,
    delete_layer,
    ensure_function,
    ensure_layer,
    function_drift,
)
from radstream.aws.packaging import deterministic_zip, function_zip
from tests.support.aws import record_mutations

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ENV = {"RESULTS_BUCKET": "t1-results-123456789012", "MODEL_NAME": "radstream_cxr"}


@pytest.fixture
def aws():
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
        role = iam.create_role(RoleName="t1-lambda-role", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        yield boto3.client("lambda", region_name=REGION), role


def test_code_sha256_is_lambdas_encoding():
    assert code_sha256(b"abc") == base64.b64encode(hashlib.sha256(b"abc").digest()).decode()


def test_layer_is_published_once_per_content(aws):
    lam, _ = aws
    layer = deterministic_zip({"python/dep.py": b"X = 1\n"})
    arn, changed = ensure_layer(lam, "t1-pipeline-deps", layer)
    assert changed and arn.endswith(":1")
    seen = record_mutations(lam)
    assert ensure_layer(lam, "t1-pipeline-deps", layer) == (arn, False)
    assert seen == []
    arn2, changed = ensure_layer(lam, "t1-pipeline-deps", deterministic_zip({"python/dep.py": b"X = 2\n"}))
    assert changed and arn2.endswith(":2")
    delete_layer(lam, "t1-pipeline-deps")
    assert lam.list_layer_versions(LayerName="t1-pipeline-deps")["LayerVersions"] == []
    delete_layer(lam, "t1-pipeline-deps")


def test_function_create_skip_upload_and_repair(aws):
    lam, role = aws
    code = function_zip(ROOT, "validate_metadata")
    layer_arn, _ = ensure_layer(lam, "t1-pipeline-deps", deterministic_zip({"python/dep.py": b""}))
    args = dict(role_arn=role, env=ENV, layers=[layer_arn], tags=TAGS)
    assert function_drift(lam, "t1-validate-metadata", zip_bytes=code, **args) == ["missing"]
    assert ensure_function(lam, "t1-validate-metadata", zip_bytes=code, **args) is True
    config = lam.get_function(FunctionName="t1-validate-metadata")["Configuration"]
    assert config["Runtime"] == RUNTIME and config["Handler"] == "handler.handler"
    assert config["CodeSha256"] == code_sha256(code)

    seen = record_mutations(lam)
    assert ensure_function(lam, "t1-validate-metadata", zip_bytes=code, **args) is False
    assert seen == []  # same sha256: no upload, no configuration update

    # A later phase adds its own variable: keeping it is not drift, and repairs preserve it.
    lam.update_function_configuration(FunctionName="t1-validate-metadata",
                                       Environment={"Variables": {**ENV, "INFERENCE_ENDPOINT": "http://x"}})
    assert function_drift(lam, "t1-validate-metadata", zip_bytes=code, **args) == []
    lam.update_function_configuration(FunctionName="t1-validate-metadata", Timeout=3,
                                       Environment={"Variables": {"INFERENCE_ENDPOINT": "http://x"}})
    new_code = deterministic_zip({"handler.py": b"def handler(e, c):\n    return e\n"})
    assert function_drift(lam, "t1-validate-metadata", zip_bytes=new_code, **args) == ["code", "configuration"]
    seen.clear()
    assert ensure_function(lam, "t1-validate-metadata", zip_bytes=new_code, **args) is True
    assert seen == ["UpdateFunctionCode", "UpdateFunctionConfiguration"]
    config = lam.get_function(FunctionName="t1-validate-metadata")["Configuration"]
    assert config["Environment"]["Variables"] == {**ENV, "INFERENCE_ENDPOINT": "http://x"}
    assert config["Timeout"] == 60
    assert function_drift(lam, "t1-validate-metadata", zip_bytes=new_code, **args) == []


def test_delete_function_quiet_when_gone(aws):
    lam, role = aws
    code = deterministic_zip({"handler.py": b"def handler(e, c):\n    return e\n"})
    ensure_function(lam, "t1-store-failure", role_arn=role, zip_bytes=code, env={}, layers=[], tags=TAGS)
    delete_function(lam, "t1-store-failure")
    assert function_drift(lam, "t1-store-failure", role_arn=role, zip_bytes=code, env={}, layers=[],
                          tags=TAGS) == ["missing"]
    delete_function(lam, "t1-store-failure")


def _python_version(runtime: str) -> tuple[int, ...]:
    return tuple(int(part) for part in runtime.removeprefix("python").split("."))


def test_functions_and_the_layer_target_a_runtime_on_amazon_linux_2023(aws):
    # python3.11 runs on Amazon Linux 2, whose support ends in mid-2026.
    lam, role = aws
    layer_arn, _ = ensure_layer(lam, "t1-pipeline-deps", deterministic_zip({"python/dep.py": b"X = 1\n"}))
    ensure_function(lam, "t1-store-results", role_arn=role, zip_bytes=function_zip(ROOT, "store_results"),
                    env=ENV, layers=[layer_arn], tags=TAGS)
    runtime = lam.get_function(FunctionName="t1-store-results")["Configuration"]["Runtime"]
    assert _python_version(runtime) >= (3, 12)
    layer = lam.get_layer_version(LayerName="t1-pipeline-deps", VersionNumber=int(layer_arn.rsplit(":", 1)[1]))
    assert layer["CompatibleRuntimes"] == [runtime]


def test_an_invoke_permission_for_one_rule_is_added_once_repaired_and_removed_quietly(aws):
    from radstream.aws.lambda_ import delete_invoke_permission, ensure_invoke_permission, invoke_permission_drift

    lam, role = aws
    ensure_function(lam, "t1-store-failure", role_arn=role, zip_bytes=deterministic_zip({"handler.py": b""}),
                    env=ENV, layers=[], tags=TAGS)
    rule = "arn:aws:events:us-east-1:123456789012:rule/t1-execution-failed"
    args = ("t1-store-failure", "execution-failed-rule", "events.amazonaws.com")
    assert invoke_permission_drift(lam, *args, rule) == ["missing"]
    assert ensure_invoke_permission(lam, *args, rule) is True
    [statement] = json.loads(lam.get_policy(FunctionName="t1-store-failure")["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": rule}}
    assert ensure_invoke_permission(lam, *args, rule) is False

    other = rule.replace("execution-failed", "someone-elses")
    assert invoke_permission_drift(lam, *args, other) == ["permission"]
    assert ensure_invoke_permission(lam, *args, other) is True
    assert invoke_permission_drift(lam, *args, other) == []

    delete_invoke_permission(lam, "t1-store-failure", "execution-failed-rule")
    assert invoke_permission_drift(lam, *args, rule) == ["missing"]
    delete_invoke_permission(lam, "t1-store-failure", "execution-failed-rule")
    delete_function(lam, "t1-store-failure")
    delete_invoke_permission(lam, "t1-store-failure", "execution-failed-rule")
