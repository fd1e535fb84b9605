"""`radstream render`: what it writes is what phase 0 applies (read back from moto after an apply),
a second render leaves no stale file, and on aws without credentials it fails clearly and writes
nothing. Linting the rendered documents is tests/prove/test_least_privilege.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from radstream import documents
from radstream.aws.events import TARGET_FIELDS
from radstream.aws.lambda_ import newest_layer_version
from radstream.names import LAMBDA_FUNCTIONS
from tests.conftest import REPO, cli_env
from tests.unit.test_aws_s3 import moto_conditioned_deny, moto_s3_eventbridge_readback  # noqa: F401
from tests.unit.test_phase0_plan import ctx, run_apply  # noqa: F401

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/rs-triton:model-0123456789ab"


def load(out: Path, relative: str):
    return json.loads((out / relative).read_text())


def test_render_shows_what_phase_0_applied(ctx, tmp_path: Path):  # noqa: F811
    outputs = run_apply(ctx)
    lam, iam, names = ctx.client("lambda"), ctx.client("iam"), ctx.names
    # The layer version render reads from the target is the one the functions were given.
    layer = newest_layer_version(lam, names.lambda_layer)
    assert layer == outputs["layer_arn"]
    out = tmp_path / "rendered"
    facts = documents.Facts(IMAGE, layer, REPO / "model_repo")
    documents.write(out, documents.render(names, ctx.config, ctx.root, facts))

    for fn in LAMBDA_FUNCTIONS:
        rendered, live = load(out, f"lambda/{fn}.json"), lam.get_function(FunctionName=names.lambda_function(fn))
        config = live["Configuration"]
        keys = ("FunctionName", "Role", "Handler", "Runtime", "Timeout", "MemorySize", "Environment")
        assert {k: config[k] for k in keys} == {k: rendered[k] for k in keys}
        assert [layer["Arn"] for layer in config["Layers"]] == rendered["Layers"]
        assert live["Tags"] == rendered["Tags"]
    for purpose in ("lambda", "sfn", "eks-cluster"):
        role = iam.get_role(RoleName=names.role(purpose))["Role"]
        assert role["AssumeRolePolicyDocument"] == load(out, f"iam/{purpose}.trust.json")
    policy = iam.get_role_policy(RoleName=names.role("lambda"), PolicyName="radstream")["PolicyDocument"]
    assert policy == load(out, "iam/lambda.policy.json")
    machine = ctx.client("stepfunctions").describe_state_machine(stateMachineArn=outputs["state_machine_arn"])
    assert json.loads(machine["definition"]) == load(out, "stepfunctions/pipeline.asl.json")
    events = ctx.client("events")
    for purpose in ("image-uploaded", "execution-failed"):
        rendered = load(out, f"events/{purpose}.rule.json")
        assert json.loads(events.describe_rule(Name=rendered["Name"])["EventPattern"]) == rendered["EventPattern"]
        targets = events.list_targets_by_rule(Rule=rendered["Name"])["Targets"]
        assert [{k: t[k] for k in TARGET_FIELDS if k in t} for t in targets] == rendered["Targets"]
    sqs = ctx.client("sqs")
    rendered = load(out, "sqs/dead-letter.queue.json")
    queue = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=rendered["QueueName"])["QueueUrl"],
                                     AttributeNames=["All"])["Attributes"]
    assert {**queue, "Policy": json.loads(queue["Policy"])} | rendered["Attributes"] == \
        {**queue, "Policy": json.loads(queue["Policy"])}
    assert rendered["Attributes"]["Policy"] == load(out, "iam/dead-letter-queue.resource-policy.json")
    mapping = load(out, "sqs/dead-letter.event-source-mapping.json")
    [live_mapping] = lam.list_event_source_mappings(EventSourceArn=mapping["EventSourceArn"])["EventSourceMappings"]
    assert live_mapping["FunctionArn"].endswith(f":function:{mapping['FunctionName']}")
    assert live_mapping["BatchSize"] == mapping["BatchSize"]
    permission = load(out, "events/execution-failed.invoke-permission.json")
    [statement] = json.loads(lam.get_policy(FunctionName=permission["FunctionName"])["Policy"])["Statement"]
    assert statement["Sid"] == permission["StatementId"]
    assert statement["Condition"]["ArnLike"]["AWS:SourceArn"] == permission["SourceArn"]
    s3 = ctx.client("s3")
    for kind, bucket in names.buckets().items():
        assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == load(out, f"s3/{kind}.bucket-policy.json")


def test_a_second_render_replaces_its_folders_and_keeps_other_files(tmp_path: Path):
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "stale.yaml").write_text("kind: Gone\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    files = documents.write(tmp_path, {"k8s/00-namespace-x.yaml": {"kind": "Namespace"}, "triton/m/config.pbtxt": "x"})
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == \
        ["k8s/00-namespace-x.yaml", "notes.txt", "triton/m/config.pbtxt"]
    assert files == ["k8s/00-namespace-x.yaml", "triton/m/config.pbtxt"]


def test_render_on_aws_without_credentials_fails_clearly_and_writes_nothing(project: Path):
    # No credential anywhere botocore looks, and no instance metadata service to wait for.
    env = {k: v for k, v in cli_env().items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=str(project / "none"), AWS_SHARED_CREDENTIALS_FILE=str(project / "none"),
               AWS_EC2_METADATA_DISABLED="true")
    result = subprocess.run([sys.executable, "-m", "radstream.cli", "render", "--out", "rendered", "--target", "aws",
                             "--json"], cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and result.stdout.count("\n") == 1
    error = json.loads(result.stdout)
    assert error["ok"] is False and error["type"] == "NoCredentialsError"
    assert "credentials" in error["error"] and error["hint"]
    assert not (project / "rendered").exists()
    # The project is on the sandbox target: --target aws, not the config, chose where to look.
    assert not (project / ".radstream" / "sandbox.json").exists()


def _rendered(pipeline: dict) -> dict:
    from radstream.config import validate
    from radstream.names import Names

    config = validate({"deployment": "rs-lim", "pipeline": pipeline}, "test")
    return documents.render(Names("rs-lim", "123456789012", "us-east-1"), config, REPO,
                            documents.Facts(IMAGE, None, REPO / "model_repo"))


def _sidecar_retrier(found: dict) -> dict | None:
    retriers = found["stepfunctions/pipeline.asl.json"]["States"]["ValidateInput"]["Retry"]
    return next((r for r in retriers if r["ErrorEquals"] == ["MissingMetadata"]), None)


def _total_wait(retrier: dict) -> float:
    return sum(min(retrier["MaxDelaySeconds"], retrier["IntervalSeconds"] * retrier["BackoffRate"] ** i)
               for i in range(retrier["MaxAttempts"]))


def test_every_function_is_given_the_size_limits_of_the_config():
    found = _rendered({"max_image_bytes": 5000, "max_pixels": 60000})
    for fn in LAMBDA_FUNCTIONS:
        env = found[f"lambda/{fn}.json"]["Environment"]["Variables"]
        assert (env["MAX_IMAGE_BYTES"], env["MAX_PIXELS"]) == ("5000", "60000")


def test_the_state_machine_waits_for_a_late_sidecar_as_long_as_the_config_says():
    assert _total_wait(_sidecar_retrier(_rendered({}))) == 30  # 2 + 4 + 8 + 16, the default
    for seconds in (1, 5, 45, 120, 600):
        retrier = _sidecar_retrier(_rendered({"sidecar_wait_seconds": seconds}))
        assert seconds <= _total_wait(retrier) < seconds + retrier["MaxDelaySeconds"], seconds
    # No wait: a missing sidecar is quarantined on the first look.
    assert _sidecar_retrier(_rendered({"sidecar_wait_seconds": 0})) is None


def test_a_gpu_instance_type_renders_the_model_on_the_gpu_and_the_pod_requesting_one(tmp_path: Path):
    from radstream import config
    from radstream.names import Names

    def rendered(instance_type: str) -> tuple[str, dict]:
        (tmp_path / "radstream.yaml").write_text(
            f"target: aws\ndeployment: rs-gpu\nregion: us-east-1\nnodegroup:\n  instance_type: {instance_type}\n")
        settings = config.load(tmp_path / "radstream.yaml", environ={}).settings
        found = documents.render(Names("rs-gpu", "123456789012", "us-east-1"), settings, REPO,
                                 documents.Facts(IMAGE, None, REPO / "model_repo"))
        [deployment] = [doc for path, doc in found.items() if path.startswith("k8s/") and doc["kind"] == "Deployment"]
        return found["triton/radstream_cxr/config.pbtxt"], deployment

    gpu_config, gpu_pod = rendered("g4dn.xlarge")
    cpu_config, cpu_pod = rendered("t3.medium")
    assert "KIND_GPU" in gpu_config and "KIND_CPU" not in gpu_config
    assert "KIND_CPU" in cpu_config and "KIND_GPU" not in cpu_config
    [gpu_container] = gpu_pod["spec"]["template"]["spec"]["containers"]
    [cpu_container] = cpu_pod["spec"]["template"]["spec"]["containers"]
    assert gpu_container["resources"]["requests"]["nvidia.com/gpu"] == gpu_container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in cpu_container["resources"]["requests"]
