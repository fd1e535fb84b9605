"""Every document RadStream applies, rendered for one deployment: what `radstream render` writes.

The builders are pure: functions of the deployment's Names, its settings and the templates under
manifests/, and the phases build what they apply with these same functions, so what render shows is
what `up` sends. What only exists once applied (the serving image's digest, the layer's version)
comes in as Facts, which radstream.preview reads from the target.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.aws.lambda_ import LAMBDA_MEMORY_MB, LAMBDA_TIMEOUT_S
from radstream.aws.sqs import BATCH_SIZE as DEAD_LETTER_BATCH_SIZE
from radstream.names import LAMBDA_FUNCTIONS, Names

if TYPE_CHECKING:
    from radstream.config import Config

# The phase that applies these documents; their resources' tags name it.
FOUNDATION_PHASE = 0
FAILURE_LOGS_POLICY = "events-to-logs"
# The folders render owns in its output directory (emptied before each render: no stale file stays).
FOLDERS = ("iam", "s3", "sqs", "events", "stepfunctions", "lambda", "ec2", "waf", "k8s", "triton")


def template_variables(names: Names) -> dict[str, str]:
    """Values for the ${...} placeholders in manifests/iam/."""
    buckets = names.buckets()
    return {
        "Partition": names.partition,
        "Account": names.account_id,
        "Region": names.region,
        "Deployment": names.deployment,
        "ImagesBucket": buckets["images"],
        "ResultsBucket": buckets["results"],
        "TelemetryBucket": buckets["telemetry"],
        "ArtifactsBucket": buckets["artifacts"],
        "KinesisStream": names.kinesis_stream,
        "StateMachine": names.state_machine,
        "GlueDatabase": names.glue_database,
        "EcrRepository": names.ecr_repository,
        "FailureLogGroup": failure_log_group(names),
        "DeadLetterQueue": names.dead_letter_queue,
    }


def failure_log_group(names: Names) -> str:
    return f"/aws/events/{names.deployment}/execution-failed"


def role_arn(names: Names, purpose: str) -> str:
    from radstream.aws.iam import role_arn as arn

    return arn(names.account_id, names.role(purpose), names.partition)


def function_arns(names: Names) -> dict[str, str]:
    from radstream.aws.lambda_ import function_arn

    return {fn: function_arn(names.region, names.account_id, names.lambda_function(fn), names.partition)
            for fn in LAMBDA_FUNCTIONS}


def state_machine_arn(names: Names) -> str:
    from radstream.aws.stepfunctions import state_machine_arn as arn

    return arn(names.region, names.account_id, names.state_machine, names.partition)


# -- IAM --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Role:
    purpose: str
    name: str
    trust: dict[str, Any]
    policy: dict[str, Any] | None  # the inline policy; the EKS cluster role has none
    managed: list[str]  # AWS managed policy ARNs


def roles(names: Names, root: Path) -> list[Role]:
    from radstream.aws.iam import ROLE_PURPOSES, managed_policy_arns, role_documents

    variables, manifests = template_variables(names), root / "manifests" / "iam"
    return [Role(purpose, names.role(purpose), *role_documents(manifests, purpose, variables),
                 managed_policy_arns(purpose, names.partition)) for purpose in ROLE_PURPOSES]


def operator_policies(names: Names) -> dict[str, dict[str, Any]]:
    """The operator's managed policies for this deployment, by template name (operator, operator-read)."""
    from radstream.aws.operator_policy import POLICY_NAMES, operator_documents

    return {name.removesuffix(".json"): document
            for name, document in zip(POLICY_NAMES, operator_documents(template_variables(names)), strict=True)}


def logs_resource_policy(names: Names, root: Path) -> tuple[str, dict[str, Any]]:
    """(name, document) of the CloudWatch Logs resource policy that lets EventBridge log failures."""
    from radstream.aws.iam import render_document

    path = root / "manifests" / "iam" / f"{FAILURE_LOGS_POLICY}.resource-policy.json"
    return f"{names.deployment}-{FAILURE_LOGS_POLICY}", render_document(path, template_variables(names))


def bucket_policies(names: Names) -> dict[str, dict[str, Any]]:
    """Each bucket's policy (TLS only), by bucket kind."""
    from radstream.aws.s3 import tls_only_policy

    return {kind: tls_only_policy(bucket, names.partition) for kind, bucket in names.buckets().items()}


# -- the pipeline -----------------------------------------------------------------------------------
def state_machine_definition(names: Names, config: Config, root: Path) -> dict[str, Any]:
    from radstream.aws.stepfunctions import render_definition, with_sidecar_wait

    definition = render_definition(root / "manifests" / "stepfunctions" / "pipeline.asl.json", function_arns(names))
    return with_sidecar_wait(definition, config.pipeline.sidecar_wait_seconds)


@dataclass(frozen=True)
class Rule:
    purpose: str
    name: str
    pattern: dict[str, Any]
    targets: list[dict[str, Any]]
    description: str


# EventBridge's own defaults, stated so drift shows when they are changed: a throttled or briefly
# failing StartExecution is retried for a day before the upload goes to the dead-letter queue.
UPLOAD_RETRY_POLICY = {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400}
# The statement id of the permission that lets the execution-failed rule invoke StoreFailure.
FAILURE_RECORD_PERMISSION = "execution-failed-rule"


def rule_arn(names: Names, purpose: str) -> str:
    from radstream.aws.events import rule_arn as arn

    return arn(names.region, names.account_id, names.event_rule(purpose), names.partition)


def dead_letter_queue_arn(names: Names) -> str:
    from radstream.aws.sqs import queue_arn

    return queue_arn(names.region, names.account_id, names.dead_letter_queue, names.partition)


def dead_letter_queue_policy(names: Names) -> dict[str, Any]:
    """Only EventBridge, and only for the image-uploaded rule, may put messages in the queue."""
    from radstream.aws.sqs import dead_letter_policy

    return dead_letter_policy(dead_letter_queue_arn(names), rule_arn(names, "image-uploaded"), names.partition)


def dead_letter_queue_attributes(names: Names) -> dict[str, str]:
    from radstream.aws.sqs import queue_attributes

    return queue_attributes(dead_letter_queue_policy(names))


def event_rules(names: Names) -> list[Rule]:
    """image-uploaded starts the pipeline, and what it cannot deliver goes to the dead-letter queue
    (StoreFailure reads it); execution-failed logs executions that end badly and has StoreFailure
    record the ones no Catch recorded (a timeout, an abort, a failure outside every Catch)."""
    from radstream.aws.events import execution_failed_pattern, image_uploaded_pattern, log_group_arn

    log_arn = log_group_arn(names.region, names.account_id, failure_log_group(names), names.partition)
    return [
        Rule("image-uploaded", names.event_rule("image-uploaded"), image_uploaded_pattern(names.bucket("images")),
             [{"Id": "pipeline", "Arn": state_machine_arn(names), "RoleArn": role_arn(names, "events"),
               "RetryPolicy": UPLOAD_RETRY_POLICY, "DeadLetterConfig": {"Arn": dead_letter_queue_arn(names)}}],
             "every upload but a .json sidecar starts the pipeline (its content decides what it is); what cannot be "
             "delivered goes to the dead-letter queue"),
        Rule("execution-failed", names.event_rule("execution-failed"),
             execution_failed_pattern(state_machine_arn(names)),
             [{"Id": "failure-log", "Arn": log_arn},
              {"Id": "failure-record", "Arn": function_arns(names)["store_failure"]}],
             "failed, timed-out or aborted executions are logged, and recorded in failed/ when no Catch did"),
    ]


def failure_record_permission(names: Names) -> dict[str, str]:
    """AddPermission's parameters: the execution-failed rule may invoke StoreFailure."""
    return {"FunctionName": names.lambda_function("store_failure"), "StatementId": FAILURE_RECORD_PERMISSION,
            "Action": "lambda:InvokeFunction", "Principal": "events.amazonaws.com",
            "SourceArn": rule_arn(names, "execution-failed")}


def function_settings(names: Names, config: Config) -> dict[str, Any]:
    """What every pipeline function is given (the keyword arguments of radstream.aws.lambda_'s
    function_drift and ensure_function, less the code, layers and tags)."""
    buckets = names.buckets()
    env = {
        "DEPLOYMENT": names.deployment,
        "IMAGES_BUCKET": buckets["images"],
        "RESULTS_BUCKET": buckets["results"],
        "TELEMETRY_BUCKET": buckets["telemetry"],
        "ARTIFACTS_BUCKET": buckets["artifacts"],
        "TELEMETRY_STREAM": names.kinesis_stream,
        "MODEL_NAME": config.triton.model_name,
        # ValidateInput and PrepareImage refuse larger inputs before decoding them.
        "MAX_IMAGE_BYTES": str(config.pipeline.max_image_bytes),
        "MAX_PIXELS": str(config.pipeline.max_pixels),
    }
    return {"role_arn": role_arn(names, "lambda"), "env": env, "timeout": LAMBDA_TIMEOUT_S, "memory": LAMBDA_MEMORY_MB}


def layer_arn_before_publish(names: Names) -> str:
    """The layer's ARN without a version: what render shows before the first version is published."""
    from radstream.aws import make_arn

    return make_arn(names.partition, "lambda", names.region, names.account_id, f"layer:{names.lambda_layer}")


def function_vpc_before_network(names: Names) -> dict[str, list[str]]:
    """The Lambdas' VpcConfig as render shows it before the network exists."""
    return {"SubnetIds": [f"({names.deployment}-private-<zone>, one per zone)"],
            "SecurityGroupIds": [f"({names.deployment}-lambda)"]}


def create_function_parameters(names: Names, config: Config, fn: str, layer_arn: str,
                               vpc: dict[str, list[str]] | None) -> dict[str, Any]:
    from radstream.aws.lambda_ import create_parameters, function_configuration

    return create_parameters(names.lambda_function(fn),
                             function_configuration(**function_settings(names, config), layers=[layer_arn],
                                                    vpc=vpc or function_vpc_before_network(names)),
                             names.tags(FOUNDATION_PHASE))


def security_groups(names: Names, config: Config, vpc_cidr: str | None) -> dict[str, Any]:
    """The rules of the security groups phase 0 makes (the endpoints' only in a created network)."""
    from radstream.aws.network import groups

    created = config.network.mode == "create" and config.cluster.mode == "create"
    cidr = vpc_cidr or (config.network.cidr if created else "(the adopted VPC's CIDR)")
    return {g.name.removeprefix(f"{names.deployment}-"): {"GroupName": g.name, "Description": g.description,
                                                           "IpPermissions": g.ingress, "IpPermissionsEgress": g.egress}
            for g in groups(cidr, names.deployment, f"(com.amazonaws.{names.region}.s3 prefix list)", created)}


# -- the public door --------------------------------------------------------------------------------
# AWS's managed rule groups the door's web ACL runs, in evaluation order after its own two rules.
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                       "AWSManagedRulesSQLiRuleSet")
# The common rule set blocks any body over 8 KB (SizeRestrictions_BODY): every inference request is
# larger, so that rule only counts, and the door's own size rule caps bodies instead.
COUNTED_MANAGED_RULES = {"AWSManagedRulesCommonRuleSet": ("SizeRestrictions_BODY",)}
# WAF reads at most the first 8 KB of an ALB request's body, so the cap reads the declared length:
# eight digits or more is 10 MB or more (an inference request is well under 1 MB).
OVERSIZED_CONTENT_LENGTH = r"^[0-9]{8,}$"


def _visibility(metric: str) -> dict[str, Any]:
    # Sampled requests keep headers and URIs of real traffic for three hours: none are kept.
    return {"SampledRequestsEnabled": False, "CloudWatchMetricsEnabled": True, "MetricName": metric}


def web_acl(names: Names, config: Config) -> dict[str, Any]:
    """CreateWebACL's DefaultAction, Rules and VisibilityConfig for the door: the rate rule first
    (a flood costs no further inspection), the size cap, then AWS's managed groups."""
    prefix = f"{names.deployment}-door"
    rules: list[dict[str, Any]] = [
        {"Name": "rate-limit", "Priority": 0,
         "Statement": {"RateBasedStatement": {"Limit": config.expose.rate_limit, "AggregateKeyType": "IP",
                                              "EvaluationWindowSec": config.expose.rate_window_seconds}},
         "Action": {"Block": {"CustomResponse": {"ResponseCode": 429}}}, "VisibilityConfig": _visibility(f"{prefix}-rate")},
        {"Name": "oversized-body", "Priority": 1,
         "Statement": {"RegexMatchStatement": {"RegexString": OVERSIZED_CONTENT_LENGTH,
                                               "FieldToMatch": {"SingleHeader": {"Name": "content-length"}},
                                               "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}},
         "Action": {"Block": {"CustomResponse": {"ResponseCode": 413}}}, "VisibilityConfig": _visibility(f"{prefix}-size")},
    ]
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=2):
        statement: dict[str, Any] = {"VendorName": "AWS", "Name": group}
        counted = COUNTED_MANAGED_RULES.get(group, ())
        if counted:
            statement["RuleActionOverrides"] = [{"Name": rule, "ActionToUse": {"Count": {}}} for rule in counted]
        rules.append({"Name": group, "Priority": priority, "Statement": {"ManagedRuleGroupStatement": statement},
                      "OverrideAction": {"None": {}}, "VisibilityConfig": _visibility(f"{prefix}-{group}")})
    return {"DefaultAction": {"Allow": {}}, "Rules": rules, "VisibilityConfig": _visibility(prefix)}


def door_security_group(names: Names, config: Config, node_port: int | None, vpc_cidr: str | None) -> dict[str, Any]:
    """The door's security group as render shows it (the node port is the Service's, known after phase 3)."""
    from radstream.aws.public_door import Door

    door = Door(names.deployment, "(the VPC)", vpc_cidr or config.network.cidr, (), tuple(config.expose.allowed_cidrs),
                "", node_port or 0, (), None)
    egress = door.egress()
    if node_port is None:
        egress = [{**rule, "FromPort": "(Triton's node port)", "ToPort": "(Triton's node port)"} for rule in egress]
    return {"GroupName": door.name, "IpPermissions": door.ingress(), "IpPermissionsEgress": egress}


# -- Kubernetes -------------------------------------------------------------------------------------
def certificate_arn_before_import(names: Names) -> str:
    """What render shows for Triton's certificate before phase 3 imports it into ACM."""
    from radstream.aws import make_arn

    return make_arn(names.partition, "acm", names.region, names.account_id, "certificate/imported-by-phase-3")


def kube_objects(config: Config, root: Path, image: str, certificate_arn: str) -> list[dict[str, Any]]:
    """The objects phases 1 (the GPU device plugin), 2 and 3 apply, in the order they apply them."""
    from radstream.kube import manifests

    directory = manifests.template_dir(root)
    plugin = [manifests.device_plugin(config, directory)] if manifests.is_gpu(config) else []
    return [*plugin, manifests.namespace(config, directory), *manifests.workloads(config, directory, image),
            manifests.service(config, directory, certificate_arn)]


# -- everything, as files ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    """What only the target knows."""

    image: str  # repository:tag@digest once pushed, repository:tag (the tag phase 2 pushes) before
    layer_arn: str | None  # the layer's newest version, None before the first publish
    model_repository: Path  # the Triton model repository the image serves
    certificate_arn: str | None = None  # Triton's certificate in ACM, None before phase 3 imports it
    function_vpc: dict[str, list[str]] | None = None  # the Lambdas' VpcConfig, None before the network
    node_port: int | None = None  # the Triton Service's node port (the door forwards to it), None before phase 3


def render(names: Names, config: Config, root: Path, facts: Facts) -> dict[str, Any]:
    """Relative path -> document: a dict or list for .json and .yaml files, text for the rest."""
    from radstream.aws.events import rule_parameters
    from radstream.inference.repository import for_device
    from radstream.kube.manifests import is_gpu

    found: dict[str, Any] = {}
    for role in roles(names, root):
        found[f"iam/{role.purpose}.trust.json"] = role.trust
        if role.policy is not None:
            found[f"iam/{role.purpose}.policy.json"] = role.policy
        if role.managed:
            found[f"iam/{role.purpose}.managed-policies.json"] = role.managed
    for name, document in operator_policies(names).items():
        found[f"iam/{name}.policy.json"] = document
    found[f"iam/{FAILURE_LOGS_POLICY}.resource-policy.json"] = logs_resource_policy(names, root)[1]
    found["iam/dead-letter-queue.resource-policy.json"] = dead_letter_queue_policy(names)
    found["sqs/dead-letter.queue.json"] = {
        "QueueName": names.dead_letter_queue,
        "Attributes": {**dead_letter_queue_attributes(names), "Policy": dead_letter_queue_policy(names)},
        "tags": names.tags(FOUNDATION_PHASE)}
    found["sqs/dead-letter.event-source-mapping.json"] = {
        "EventSourceArn": dead_letter_queue_arn(names), "FunctionName": names.lambda_function("store_failure"),
        "BatchSize": DEAD_LETTER_BATCH_SIZE, "Enabled": True}
    found["events/execution-failed.invoke-permission.json"] = failure_record_permission(names)
    for kind, document in bucket_policies(names).items():
        found[f"s3/{kind}.bucket-policy.json"] = document
    for rule in event_rules(names):
        found[f"events/{rule.purpose}.rule.json"] = {
            **rule_parameters(rule.name, rule.pattern, names.tags(FOUNDATION_PHASE), rule.description),
            "Targets": rule.targets}
    found["stepfunctions/pipeline.asl.json"] = state_machine_definition(names, config, root)
    layer = facts.layer_arn or layer_arn_before_publish(names)
    for fn in LAMBDA_FUNCTIONS:
        found[f"lambda/{fn}.json"] = create_function_parameters(names, config, fn, layer, facts.function_vpc)
    for name, group in security_groups(names, config, None).items():
        found[f"ec2/{name}.security-group.json"] = group
    if config.expose.public:
        found["waf/door.web-acl.json"] = {"Name": f"{names.deployment}-door", "Scope": "REGIONAL",
                                          **web_acl(names, config)}
        found["ec2/door.security-group.json"] = door_security_group(names, config, facts.node_port, None)
    certificate = facts.certificate_arn or certificate_arn_before_import(names)
    for index, obj in enumerate(kube_objects(config, root, facts.image, certificate)):
        found[f"k8s/{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"] = obj
    for model_config in sorted(facts.model_repository.glob("*/config.pbtxt")):
        # As the serving image carries it: on the nodegroup's device.
        found[f"triton/{model_config.parent.name}/config.pbtxt"] = for_device(model_config.read_text(), is_gpu(config))
    return found


def write(out: Path, documents: dict[str, Any]) -> list[str]:
    """Write the documents under `out` (render's own folders emptied first); their relative paths."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    for folder in FOLDERS:
        shutil.rmtree(out / folder, ignore_errors=True)
    for relative, document in documents.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(document, str):
            path.write_text(document)
        elif relative.endswith(".yaml"):
            path.write_text(yaml.safe_dump(document, sort_keys=False))
        else:
            path.write_text(json.dumps(document, indent=2) + "\n")
    return list(documents)
