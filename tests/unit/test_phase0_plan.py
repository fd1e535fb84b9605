"""Phase 0 end to end against in-process moto, through the real Context: plan from nothing, apply,
verify, a converged second pass with zero mutations, drift repaired, destroy leaves nothing tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto import mock_aws

from radstream import config
from radstream.aws.inventory import deployment_resources
from radstream.aws.packaging import deterministic_zip, layer_cache_path
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases.base import VerifyFailed
from radstream.phases.p0_foundation import FoundationPhase
from radstream.state import State
from tests.support.aws import beyond_the_operator_policy
from tests.unit.test_aws_s3 import moto_conditioned_deny, moto_s3_eventbridge_readback  # noqa: F401

DEPLOYMENT = "rs-p0"


@pytest.fixture
def ctx(tmp_path: Path, monkeypatch, moto_s3_eventbridge_readback, moto_conditioned_deny):  # noqa: F811
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: {DEPLOYMENT}\nregion: us-east-1\n")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    context = Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "aws"))
    # The layer comes from its content-addressed cache; a stand-in keeps this test offline.
    layer = layer_cache_path(context.cache_dir)
    layer.parent.mkdir(parents=True)
    layer.write_bytes(deterministic_zip({"python/stand_in.py": b""}))
    with mock_aws():
        yield context


def run_apply(ctx: Context) -> dict:
    result = Engine(ctx, [FoundationPhase()]).run([0])
    assert result.ok, result.error
    return ctx.state.outputs(0)


def test_plan_from_nothing_creates_every_resource(ctx):
    changes = [c for step in FoundationPhase().steps(ctx) for c in step.plan(ctx)]
    assert {c.action for c in changes} == {"create"}
    kinds = {c.resource for c in changes}
    assert kinds == {"s3 bucket", "secretsmanager secret", "iam role", "kinesis stream", "lambda layer", "lambda function", "state machine",
                     "log group", "logs resource policy", "eventbridge rule", "firehose stream", "ecr repository",
                     "glue database", "glue table", "glue crawler", "athena workgroup", "eks cluster",
                     # what catches the studies no execution recorded
                     "sqs queue", "lambda event source mapping", "lambda permission",
                     # the private path, each piece shown
                     "vpc", "subnet", "internet gateway", "elastic ip", "nat gateway", "route table", "security group",
                     "vpc endpoint"}
    assert sum(c.resource == "subnet" for c in changes) == 3  # two private, the NAT gateway's public one
    assert sum(c.resource == "lambda function" for c in changes) == 6
    assert sum(c.resource == "iam role" for c in changes) == 7
    assert ctx.counter.total == 0  # planning is read-only


def test_apply_converges_and_a_second_pass_changes_nothing(ctx):
    outputs = run_apply(ctx)
    assert outputs["buckets"]["images"] == f"{DEPLOYMENT}-images-123456789012"
    assert outputs["state_machine_arn"].endswith(f":stateMachine:{DEPLOYMENT}-pipeline")
    assert set(outputs["functions"]) == {"validate_metadata", "prepare_tensors", "invoke_inference",
                                         "store_results", "send_telemetry", "store_failure"}
    assert outputs["cluster_adopted"] is False
    assert ctx.counter.total > 0

    ctx.counter.calls.clear()
    steps = FoundationPhase().steps(ctx)
    assert all(step.check(ctx) for step in steps)
    assert [c for step in steps for c in step.plan(ctx)] == []
    assert ctx.counter.total == 0

    lam = ctx.client("lambda")
    config_ = lam.get_function(FunctionName=f"{DEPLOYMENT}-send-telemetry")["Configuration"]
    assert config_["Environment"]["Variables"]["TELEMETRY_STREAM"] == f"{DEPLOYMENT}-telemetry"
    assert config_["Layers"][0]["Arn"] == outputs["layer_arn"]
    definition = json.loads(ctx.client("stepfunctions").describe_state_machine(
        stateMachineArn=outputs["state_machine_arn"])["definition"])
    assert definition["States"]["ValidateInput"]["Resource"] == outputs["functions"]["validate_metadata"]


def test_drift_is_seen_by_verify_and_repaired_by_apply(ctx):
    run_apply(ctx)
    ctx.client("s3").put_bucket_versioning(Bucket=f"{DEPLOYMENT}-results-123456789012",
                                           VersioningConfiguration={"Status": "Suspended"})
    with beyond_the_operator_policy():
        ctx.client("events").disable_rule(Name=f"{DEPLOYMENT}-image-uploaded")
    steps = {step.name: step for step in FoundationPhase().steps(ctx)}
    with pytest.raises(VerifyFailed, match="versioning"):
        steps["buckets"].verify(ctx)
    assert [c.name for c in steps["eventbridge"].plan(ctx)] == [f"{DEPLOYMENT}-image-uploaded"]
    ctx.counter.calls.clear()
    run_apply(ctx)
    assert sorted(ctx.counter.calls) == ["events:PutRule", "s3:PutBucketVersioning"]


def test_destroy_leaves_nothing_tagged(ctx, monkeypatch):
    # In-process moto's cluster has no Kubernetes API behind its endpoint; the guard that reads its
    # LoadBalancer Services is proven against the sandbox in test_what_up_leaves.
    monkeypatch.setattr("radstream.phases.p3_expose.load_balancer_services", lambda ctx: [])
    run_apply(ctx)
    found = deployment_resources(ctx.client, DEPLOYMENT)
    services = {r["service"] for r in found}
    assert {"s3", "iam", "lambda", "states", "events", "kinesis", "firehose", "ecr", "glue", "athena",
            "eks", "logs", "sqs"} <= services
    for step in reversed(FoundationPhase().steps(ctx)):
        step.destroy(ctx)
    assert deployment_resources(ctx.client, DEPLOYMENT) == []
    for step in reversed(FoundationPhase().steps(ctx)):
        step.destroy(ctx)  # quiet when already gone


def test_adopt_mode_refuses_to_create_a_cluster(ctx, tmp_path):
    from radstream.errors import RadstreamError

    ctx.config.cluster.mode = "adopt"
    cluster_step = FoundationPhase().steps(ctx)[-1]
    with pytest.raises(RadstreamError, match="cluster.mode"):
        cluster_step.apply(ctx)
