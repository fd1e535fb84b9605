"""Least privilege proven where the code runs: on a sandbox with phase 0 applied, each handler runs
with an AssumeRole session of the deployment's Lambda role and the sandbox holds that session to the
role's policy, as AWS does. The real policy lets a study through; the same policy minus one action
the pipeline needs makes the study fail with AccessDenied, named in its quarantine record or its
execution's error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from radstream import config
from radstream.aws.iam import INLINE_POLICY, role_documents
from radstream.aws.propagation import retry_while_role_propagates
from radstream.context import Context
from radstream.documents import template_variables
from radstream.engine import Engine
from radstream.phases.p0_foundation import FoundationPhase
from radstream.pipeline.study_ids import key_study_id
from radstream.state import State
from tests.conftest import REPO
from tests.integration.sandbox_fixtures import TRUST_POLICY, client, wait_for, wait_for_execution, zip_of
from tests.unit.pipeline_fixtures import raster, smooth_image

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-lpriv"

WHOAMI = """
import os
import boto3
def handler(event, context):
    try:
        boto3.client("s3").list_buckets()
        listed = "allowed"
    except boto3.client("s3").exceptions.ClientError as exc:
        listed = exc.response["Error"]["Code"]
    return {"arn": boto3.client("sts").get_caller_identity()["Arn"], "key": os.environ["AWS_ACCESS_KEY_ID"],
            "token": bool(os.environ.get("AWS_SESSION_TOKEN")), "list_buckets": listed}
"""


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A sandbox daemon with phase 0 applied and InvokeInference pointed at the sandbox's Triton."""
    from radstream.sandbox import daemon

    project = tmp_path_factory.mktemp("least-privilege")
    (project / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {DEPLOYMENT}\n")
    loaded = config.load(project / "radstream.yaml", environ={})
    daemon.start(loaded.state_dir, timeout=120, region=loaded.settings.region)
    try:
        ctx = Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))
        ctx.cache_dir = tmp_path_factory.mktemp("cache")
        result = Engine(ctx, [FoundationPhase()]).run([0])
        assert result.ok, result.error
        lam, function = ctx.client("lambda"), ctx.names.lambda_function("invoke_inference")
        env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
        lam.update_function_configuration(FunctionName=function, Environment={
            "Variables": {**env, "INFERENCE_ENDPOINT": ctx.target.endpoints["triton_http"]}})
        yield ctx
    finally:
        daemon.stop(loaded.state_dir)


def aws(ctx: Context, service: str):
    """A client of the test's own (static, unauthenticated) keys, not the operator's checked Context."""
    return client(ctx.target.endpoints, service)


def lambda_policy(ctx: Context) -> dict:
    _, policy = role_documents(REPO / "manifests" / "iam", "lambda", template_variables(ctx.names))
    return policy


@contextmanager
def role_policy(ctx: Context, policy: dict) -> Iterator[None]:
    """The Lambda role's inline policy replaced for the block, the rendered one put back after."""
    iam, role = aws(ctx, "iam"), ctx.names.role("lambda")
    iam.put_role_policy(RoleName=role, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(policy))
    try:
        yield
    finally:
        iam.put_role_policy(RoleName=role, PolicyName=INLINE_POLICY, PolicyDocument=json.dumps(lambda_policy(ctx)))


def without(policy: dict, sid: str, resource_suffix: str | None = None) -> dict:
    """`policy` minus statement `sid`, or minus only its resources ending in `resource_suffix`."""
    statements = []
    for statement in policy["Statement"]:
        if statement["Sid"] == sid and resource_suffix is not None:
            kept = [r for r in statement["Resource"] if not r.endswith(resource_suffix)]
            assert kept != statement["Resource"], f"{sid} has no resource ending in {resource_suffix}"
            statement = {**statement, "Resource": kept}
        elif statement["Sid"] == sid:
            continue
        statements.append(statement)
    return {**policy, "Statement": statements}


def upload(ctx: Context, study_id: str, sidecar: bool = True) -> None:
    s3, images = aws(ctx, "s3"), ctx.names.bucket("images")
    if sidecar:
        upload_sidecar(ctx, study_id)
    s3.put_object(Bucket=images, Key=f"incoming/{study_id}.png", Body=raster(smooth_image(96, 96), "PNG"))


def upload_sidecar(ctx: Context, study_id: str) -> None:
    body = json.dumps({"study_id": study_id, "view": "PA", "timestamp": "2024-01-15T10:00:00Z",
                       "burned_in_annotation": False}).encode()
    aws(ctx, "s3").put_object(Bucket=ctx.names.bucket("images"), Key=f"incoming/{study_id}.json", Body=body)


def landed(ctx: Context, prefix: str) -> dict | None:
    """The first outcome document under `prefix` ("results/<id>/" or "failed/<id>/"), or None."""
    s3, bucket = aws(ctx, "s3"), ctx.names.bucket("results")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    found = sorted(k for k in listed if k.endswith(".json"))
    return json.loads(s3.get_object(Bucket=bucket, Key=found[0])["Body"].read()) if found else None


def execution_of(ctx: Context, study_id: str) -> str | None:
    sfn = aws(ctx, "stepfunctions")
    for execution in sfn.list_executions(stateMachineArn=ctx.outputs(0)["state_machine_arn"])["executions"]:
        described = sfn.describe_execution(executionArn=execution["executionArn"])
        if f"incoming/{study_id}.png" in described.get("input", ""):
            return execution["executionArn"]
    return None


def test_a_handler_runs_as_an_assumed_role_session_of_its_role(deployed):
    ctx = deployed
    iam, lam = aws(ctx, "iam"), aws(ctx, "lambda")
    role = ctx.names.role("lambda")
    name = f"{DEPLOYMENT}-whoami"
    lam.create_function(FunctionName=name, Runtime="python3.11", Role=iam.get_role(RoleName=role)["Role"]["Arn"],
                        Handler="app.handler", Code={"ZipFile": zip_of({"app.py": WHOAMI})}, Timeout=10)

    first = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    assert first["arn"] == f"arn:aws:sts::{ctx.names.account_id}:assumed-role/{role}/{name}"
    assert first["token"] and first["key"] != "testing"
    # The Lambda role may not list buckets; the operator's static keys stay unauthenticated.
    assert first["list_buckets"] == "AccessDenied"
    aws(ctx, "s3").list_buckets()

    # A role change reaches the warm function with that role's credentials.
    other = f"{DEPLOYMENT}-other-role"
    other_arn = iam.create_role(RoleName=other, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))["Role"]["Arn"]
    retry_while_role_propagates(lambda: lam.update_function_configuration(FunctionName=name, Role=other_arn))
    second = json.loads(lam.invoke(FunctionName=name)["Payload"].read())
    assert second["arn"] == f"arn:aws:sts::{ctx.names.account_id}:assumed-role/{other}/{name}"
    assert second["key"] != first["key"]


def test_with_the_rendered_policy_a_study_succeeds_after_waiting_for_its_sidecar(deployed):
    ctx = deployed
    upload(ctx, "LP-OK", sidecar=False)
    # The sidecar arrives only after ValidateInput saw it missing: the wait needs S3's 404, which
    # a Lambda role gets for a missing key only with s3:ListBucket on its prefix.
    sfn = aws(ctx, "stepfunctions")
    arn = wait_for(lambda: execution_of(ctx, "LP-OK"), 60, what="the execution of LP-OK")
    wait_for(lambda: "MissingMetadata" in json.dumps(sfn.get_execution_history(executionArn=arn)["events"], default=str),
             60, what="ValidateInput to see the sidecar missing")
    upload_sidecar(ctx, "LP-OK")
    result = wait_for(lambda: landed(ctx, "results/LP-OK/"), 120, what="results/LP-OK.json")
    assert result["status"] == "SUCCESS"
    assert wait_for_execution(sfn, arn, 60)["status"] == "SUCCEEDED"


def test_without_put_on_results_the_study_is_quarantined_with_access_denied(deployed):
    ctx = deployed
    with role_policy(ctx, without(lambda_policy(ctx), "WriteResults", f"{ctx.names.bucket('results')}/results/*")):
        upload(ctx, "LP-NOPUT")
        reason = wait_for(lambda: landed(ctx, "failed/LP-NOPUT/"), 120, what="failed/LP-NOPUT/reason.json")
    assert reason["stage"] == "store"
    assert "AccessDenied" in reason["message"] and "s3:PutObject" in reason["message"], reason
    assert landed(ctx, "results/LP-NOPUT/") is None


def test_without_list_on_incoming_a_missing_sidecar_is_access_denied_not_waited_for(deployed):
    ctx = deployed
    with role_policy(ctx, without(lambda_policy(ctx), "ListStudies")):
        upload(ctx, "LP-NOLIST", sidecar=False)
        # Without its sidecar the study has no id of its own: a hash of its key.
        prefix = f"failed/{key_study_id('incoming/LP-NOLIST.png')}/"
        reason = wait_for(lambda: landed(ctx, prefix), 120, what=f"{prefix}…/reason.json")
    assert reason["stage"] == "validate" and reason["error_type"] != "MissingMetadata", reason
    assert "AccessDenied" in reason["message"] and "s3:ListBucket" in reason["message"], reason


def test_without_kinesis_put_record_the_execution_fails_with_access_denied(deployed):
    ctx = deployed
    sfn = aws(ctx, "stepfunctions")
    with role_policy(ctx, without(lambda_policy(ctx), "Telemetry")):
        upload(ctx, "LP-NOKIN")
        arn = wait_for(lambda: execution_of(ctx, "LP-NOKIN"), 60, what="the execution of LP-NOKIN")
        described = wait_for_execution(sfn, arn, 120)
    assert described["status"] == "FAILED"
    # SendTelemetry's denial, and StoreFailure's when it reports the failure on the same stream.
    history = json.dumps(sfn.get_execution_history(executionArn=arn)["events"], default=str)
    assert history.count("is not authorized to perform: kinesis:PutRecord") >= 2, history
    assert "AccessDeniedException" in history
    # The study itself was stored, and its quarantine record names the telemetry denial.
    assert landed(ctx, "results/LP-NOKIN/")["status"] == "SUCCESS"
    reason = landed(ctx, "failed/LP-NOKIN/")
    assert reason["stage"] == "telemetry" and "AccessDenied" in reason["message"], reason
