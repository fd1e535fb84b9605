import base64
import hashlib
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from tests.support.aws import record_mutations
from radstream.aws.lambda_ import (
    RUNTIME, code_sha256, delete_function, delete_layer, ensure_function, ensure_layer, function_drift,
)
from radstream.aws.packaging import deterministic_zip, function_zip

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


def load_handler(tmp_path: Path, function: str):
    """Import handler.py from the function's deployment zip, as Lambda would."""
    import importlib.util
    import io
    import zipfile

    target = tmp_path / function
    zipfile.ZipFile(io.BytesIO(function_zip(ROOT, function))).extractall(target)
    spec = importlib.util.spec_from_file_location(f"zip_{function}", target / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def test_packaged_handlers_keep_the_contract(tmp_path, monkeypatch):
    event = {"source": "aws.s3", "detail": {"bucket": {"name": "imgs"}, "object": {"key": "incoming/TEST 1.jpg"}}}
    study = load_handler(tmp_path, "validate_metadata")(event)
    assert study == {"study_id": "TEST_1", "s3_path": "s3://imgs/incoming/TEST 1.jpg", "metadata": {},
                     "inference_results": None, "processing_time_ms": {}}
    assert load_handler(tmp_path, "prepare_tensors")(study) == study

    invoke = load_handler(tmp_path, "invoke_inference")
    monkeypatch.delenv("INFERENCE_ENDPOINT", raising=False)
    with pytest.raises(Exception) as caught:
        invoke(study)
    assert type(caught.value).__name__ == "NotWired" and "phase 4" in str(caught.value)

    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket="results")
        kinesis = boto3.client("kinesis", region_name=REGION)
        kinesis.create_stream(StreamName="telemetry", ShardCount=1)
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        monkeypatch.setenv("RESULTS_BUCKET", "results")
        monkeypatch.setenv("TELEMETRY_STREAM", "telemetry")

        done = load_handler(tmp_path, "store_results")({**study, "inference_results": {"label": "x"}})
        stored = json.loads(s3.get_object(Bucket="results", Key="results/TEST_1.json")["Body"].read())
        assert stored["inference_results"] == {"label": "x"}
        assert done["results_s3_path"] == "s3://results/results/TEST_1.json"

        load_handler(tmp_path, "send_telemetry")(done)
        shard = kinesis.list_shards(StreamName="telemetry")["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName="telemetry", ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        data = kinesis.get_records(ShardIterator=iterator)["Records"][0]["Data"]
        assert data.endswith(b"\n") and json.loads(data)["study_id"] == "TEST_1"

        failed = {"s3_path": "s3://imgs/incoming/bad.jpg",
                  "failure": {"InvokeInference": {"Error": "NotWired", "Cause": "no endpoint"}}}
        out = load_handler(tmp_path, "store_failure")(failed)
        reason = json.loads(s3.get_object(Bucket="results", Key=f"failed/{out['study_id']}/reason.json")["Body"].read())
        assert reason["stage"] == "InvokeInference" and reason["error_type"] == "NotWired"
        assert out["study_id"].startswith("bad.jpg-") and out["status"] == "FAILED"
