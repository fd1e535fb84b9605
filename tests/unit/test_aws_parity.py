"""Where a moto run would pass but AWS would not: the node role's effective permissions for the
cluster add-ons' images, ARNs in the caller's partition, and which refusals count as "the role has
not propagated yet"."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from radstream import config, documents
from radstream.aws.propagation import retry_while_role_propagates, role_not_yet_assumable
from radstream.aws.s3 import tls_only_policy
from radstream.context import Context
from radstream.names import partition_of
from radstream.phases.p0_foundation import AthenaStep, FirehoseStep, GlueStep, RolesStep, StateMachineStep
from radstream.state import State

# The EKS add-ons run images from AWS's own ECR accounts (602401143452 serves most regions).
ADDON_IMAGES = [
    "arn:aws:ecr:us-east-1:602401143452:repository/amazon-k8s-cni",
    "arn:aws:ecr:us-east-1:602401143452:repository/eks/kube-proxy",
    "arn:aws:ecr:us-east-1:602401143452:repository/eks/coredns",
]


def _context(tmp_path: Path, region: str) -> Context:
    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: rs-parity\nregion: {region}\n")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, "rs-parity", "aws"))


def _effective_documents(iam, role: str) -> list[dict]:
    """The role's inline and attached managed policy documents, as IAM holds them."""
    documents = [iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
                 for name in iam.list_role_policies(RoleName=role)["PolicyNames"]]
    for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        documents.append(iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
                         ["PolicyVersion"]["Document"])
    return [json.loads(d) if isinstance(d, str) else d for d in documents]


def _allowed(documents: list[dict], action: str, resource: str) -> bool:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    results = {IAMPolicy(json.dumps(d)).is_action_permitted(action, resource) for d in documents}
    return PermissionResult.PERMITTED in results and PermissionResult.DENIED not in results


def test_nodes_may_pull_the_cluster_add_on_images_from_aws_registries(tmp_path, monkeypatch):
    monkeypatch.setenv("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    with mock_aws():
        ctx = _context(tmp_path, "us-east-1")
        RolesStep().apply(ctx)
        iam = boto3.client("iam", region_name="us-east-1")  # the test's own reads, not the deployment's
        documents = _effective_documents(iam, ctx.names.role("eks-nodes"))
        for image in ADDON_IMAGES:
            for action in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"):
                assert _allowed(documents, action, image), (action, image)
        assert _allowed(documents, "ecr:GetAuthorizationToken", "*")
        # The Lambda role, by contrast, still reaches no registry.
        lambda_documents = _effective_documents(iam, ctx.names.role("lambda"))
        assert not _allowed(lambda_documents, "ecr:BatchGetImage", ADDON_IMAGES[0])


@pytest.mark.parametrize("region, partition", [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")])
def test_every_arn_phase_0_builds_is_in_the_callers_partition(tmp_path, region, partition):
    with mock_aws():  # moto's STS answers with the region's partition, as AWS does
        ctx = _context(tmp_path, region)
        assert ctx.names.partition == partition
        roles = documents.roles(ctx.names, ctx.root)
        built = {
            "roles": RolesStep().outputs(ctx),
            "role documents": [(r.trust, r.policy) for r in roles],
            "managed policies": [arn for r in roles for arn in r.managed],
            "functions": documents.function_arns(ctx.names),
            "state machine": StateMachineStep().outputs(ctx),
            "rules": [(r.pattern, r.targets) for r in documents.event_rules(ctx.names)],
            "logs policy": documents.logs_resource_policy(ctx.names, ctx.root),
            "lambda": documents.create_function_parameters(ctx.names, ctx.config, "store_results",
                                                           documents.layer_arn_before_publish(ctx.names), None),
            "firehose": FirehoseStep()._settings(ctx),
            "glue": GlueStep()._arns(ctx),
            "athena": AthenaStep()._args(ctx),
            "bucket policy": tls_only_policy(ctx.names.bucket("images"), ctx.names.partition),
        }
    for what, value in built.items():
        rendered = json.dumps(value)
        assert "arn:aws:" not in rendered, (what, rendered)
        assert f"arn:{partition}:" in rendered, what
    assert all(arn.startswith(f"arn:{partition}:iam::aws:policy/") for arn in built["managed policies"])


def test_the_partition_is_read_from_the_callers_arn():
    assert partition_of("arn:aws-us-gov:sts::123456789012:assumed-role/ops/session") == "aws-us-gov"
    assert partition_of("arn:aws-cn:iam::123456789012:user/ops") == "aws-cn"
    assert partition_of("arn:aws:sts::123456789012:assumed-role/ops/session") == "aws"


def _refusal(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Create")


# Each service's own words for a role it cannot assume yet (as they answer right after CreateRole).
PROPAGATING = [
    _refusal("InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."),
    _refusal("AccessDeniedException", "Neither the global service principal states.amazonaws.com, nor the regional "
                                      "one is authorized to assume the provided role."),
    _refusal("InvalidArgumentException", "Firehose is unable to assume role arn:aws:iam::1:role/f. "
                                         "Please check the role provided."),
    _refusal("InvalidParameterException", "Role with arn: arn:aws:iam::1:role/c, could not be assumed because it "
                                          "does not exist or the trusted entity is not correct"),
    _refusal("InvalidParameterException", "Following required service principals [ec2.amazonaws.com] were not found "
                                          "in the trust relationships of nodeRole arn:aws:iam::1:role/n"),
]


@pytest.mark.parametrize("refusal", PROPAGATING, ids=["lambda", "states", "firehose", "eks-cluster", "eks-nodegroup"])
def test_each_services_propagation_refusal_is_retried_until_it_succeeds(refusal):
    assert role_not_yet_assumable(refusal)
    answers = [refusal, refusal, "created"]

    def create():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_while_role_propagates(create, interval=0) == "created"


def test_other_refusals_are_not_retried():
    calls = []
    permanent = _refusal("InvalidParameterValueException", "Unzipped size must be smaller than 262144000 bytes")

    def create():
        calls.append(1)
        raise permanent

    with pytest.raises(ClientError):
        retry_while_role_propagates(create, interval=0)
    assert len(calls) == 1
    assert not role_not_yet_assumable(_refusal("AccessDeniedException", "User is not authorized to perform: "
                                                                        "states:CreateStateMachine"))
