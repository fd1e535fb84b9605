"""Phase 0: every AWS resource the pipeline needs, created or adopted, tagged, and repaired when it
drifted. Each step compares the world with the desired state through the radstream.aws helpers:
check is "no drift", plan lists the drift, apply repairs it, verify re-reads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from radstream import documents
from radstream.errors import ConfigError, RadstreamError
from radstream.names import LAMBDA_FUNCTIONS, TELEMETRY_PREFIX
from radstream.phases.base import DriftStep, Phase, Step

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = documents.FOUNDATION_PHASE
ATHENA_PREFIX = "athena-results/"


class BucketsStep(DriftStep):
    name = "buckets"
    description = "images, results, telemetry and artifacts buckets (encrypted, versioned, private, TLS-only)"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.s3 import bucket_drift

        s3, tags = ctx.client("s3"), ctx.names.tags(PHASE)
        return [("s3 bucket", name, bucket_drift(s3, name, tags, eventbridge=kind == "images",
                                                 partition=ctx.names.partition))
                for kind, name in ctx.names.buckets().items()]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.s3 import ensure_bucket

        s3, tags = ctx.client("s3"), ctx.names.tags(PHASE)
        for kind, name in ctx.names.buckets().items():
            ensure_bucket(s3, name, ctx.names.region, tags, eventbridge=kind == "images", partition=ctx.names.partition)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"buckets": ctx.names.buckets()}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.s3 import delete_bucket

        s3 = ctx.client("s3")
        for name in ctx.names.buckets().values():
            delete_bucket(s3, name)


class DeidKeyStep(DriftStep):
    name = "deid-key"
    description = ("the de-identification key in Secrets Manager (random bytes keying the pseudonyms; "
                   "`radstream ingest` and `deid` read it)")

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.secrets import key_drift

        name = ctx.names.deid_key_secret
        return [("secretsmanager secret", name, key_drift(ctx.client("secretsmanager"), name, ctx.names.tags(PHASE)))]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.secrets import ensure_key

        ensure_key(ctx.client("secretsmanager"), ctx.names.deid_key_secret, ctx.names.tags(PHASE))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"deid_key_secret": ctx.names.deid_key_secret}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.secrets import RECOVERY_WINDOW_DAYS, schedule_key_deletion

        schedule_key_deletion(ctx.client("secretsmanager"), ctx.names.deid_key_secret)
        ctx.log(f"the de-identification key is scheduled for deletion in {RECOVERY_WINDOW_DAYS} days (not billed "
                "meanwhile); `radstream up` before then restores it, and with it the same pseudonyms")


class RolesStep(DriftStep):
    name = "iam-roles"
    description = "least-privilege IAM roles for Lambda, Step Functions, EventBridge, Firehose, Glue and EKS"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.iam import role_drift

        iam, tags = ctx.client("iam"), ctx.names.tags(PHASE)
        return [("iam role", r.name, role_drift(iam, r.name, r.trust, r.policy, r.managed, tags))
                for r in documents.roles(ctx.names, ctx.root)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.iam import ensure_role

        iam, tags = ctx.client("iam"), ctx.names.tags(PHASE)
        for r in documents.roles(ctx.names, ctx.root):
            ensure_role(iam, r.name, r.trust, r.policy, r.managed, tags)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.iam import ROLE_PURPOSES

        return {"roles": {purpose: documents.role_arn(ctx.names, purpose) for purpose in ROLE_PURPOSES}}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.iam import ROLE_PURPOSES, delete_role

        iam = ctx.client("iam")
        for purpose in ROLE_PURPOSES:
            delete_role(iam, ctx.names.role(purpose))


def network_layout(ctx: Context) -> Any:
    """The network network.mode create makes (radstream.aws.network.Layout)."""
    from radstream.aws.network import Layout, choose_zones

    settings = ctx.config.network
    zones = choose_zones(ctx.client("ec2"), ctx.config.nodegroup.instance_type, settings.zones)
    return Layout(ctx.names.deployment, ctx.names.region, settings.cidr, zones, not settings.no_internet_egress,
                  door=ctx.config.expose.public)


def public_subnets(ctx: Context) -> list[str] | None:
    """Where the public door's load balancer goes (expose.public); None without a door or before
    its subnets exist."""
    from radstream.aws.network import check_adopted_public, created_public_subnets, vpc_of

    if not ctx.config.expose.public:
        return None
    ec2 = ctx.client("ec2")
    if ctx.config.network.public_subnet_ids:
        private = private_subnets(ctx)
        if not private:
            return None
        return check_adopted_public(ec2, list(ctx.config.network.public_subnet_ids), vpc_of(ec2, sorted(private))["VpcId"])
    return created_public_subnets(ec2, network_layout(ctx))


def private_subnets(ctx: Context) -> dict[str, str] | None:
    """Subnet ID -> zone where the cluster, its nodes and the Lambdas go; None before they exist.
    An adopted cluster's own subnets unless network.subnet_ids names others (in its VPC)."""
    from radstream.aws.eks import describe_cluster, is_owned
    from radstream.aws.network import check_adopted, created_subnets
    from radstream.kube.capacity import instance_type

    ec2, settings = ctx.client("ec2"), ctx.config.network
    if settings.mode == "adopt":
        ng = ctx.config.nodegroup
        return check_adopted(ec2, list(settings.subnet_ids), ng.max_size * instance_type(ng.instance_type).max_pods)
    if ctx.config.cluster.mode == "adopt":
        cluster = describe_cluster(ctx.client("eks"), ctx.config.cluster_name)
        if cluster is None or is_owned(cluster, ctx.names.deployment):
            return None
        ids = cluster["resourcesVpcConfig"]["subnetIds"]
        return {s["SubnetId"]: s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=ids)["Subnets"]}
    return created_subnets(ec2, network_layout(ctx))


def function_vpc(ctx: Context) -> dict[str, list[str]] | None:
    """The Lambdas' VpcConfig; None before the network and their security group exist."""
    from radstream.aws.network import group_id, vpc_of

    subnets = private_subnets(ctx)
    if not subnets:
        return None
    ec2 = ctx.client("ec2")
    group = group_id(ec2, vpc_of(ec2, sorted(subnets))["VpcId"], f"{ctx.names.deployment}-lambda")
    return {"SubnetIds": sorted(subnets), "SecurityGroupIds": [group]} if group else None


class NetworkStep(DriftStep):
    """Before the functions (their VpcConfig) and the cluster (its subnets)."""

    name = "network"
    description = ("the private path: VPC, private subnets, NAT gateway or interface endpoints, S3 gateway endpoint, "
                   "the Lambdas' security group")

    def _adopted_groups(self, ctx: Context) -> tuple[str, list[Any]]:
        """(VPC ID, wanted groups) when the network is not ours: only the Lambdas' group is."""
        from radstream.aws.network import groups, s3_prefix_list, vpc_of

        subnets = private_subnets(ctx)
        if subnets is None:
            raise RadstreamError(f"EKS cluster {ctx.config.cluster_name} does not exist, and cluster.mode is adopt",
                                 hint="create it, fix cluster.name, or set cluster.mode: create")
        ec2 = ctx.client("ec2")
        vpc = vpc_of(ec2, sorted(subnets))
        return vpc["VpcId"], groups(vpc["CidrBlock"], ctx.names.deployment, s3_prefix_list(ec2, ctx.names.region),
                                    False)

    def _ours(self, ctx: Context) -> bool:
        return ctx.config.network.mode == "create" and ctx.config.cluster.mode == "create"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.network import groups_drift, network_drift

        ec2, tags = ctx.client("ec2"), ctx.names.tags(PHASE)
        if self._ours(ctx):
            return network_drift(ec2, network_layout(ctx), tags)
        return groups_drift(ec2, *self._adopted_groups(ctx), tags)

    def apply(self, ctx: Context) -> None:
        from radstream.aws.network import ensure_groups, ensure_network

        ec2, tags = ctx.client("ec2"), ctx.names.tags(PHASE)
        if self._ours(ctx):
            ensure_network(ec2, network_layout(ctx), tags, ctx.wait)
        else:
            ensure_groups(ec2, *self._adopted_groups(ctx), tags)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"private_subnets": private_subnets(ctx), "function_vpc": function_vpc(ctx),
                "public_subnets": public_subnets(ctx)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.network import delete_groups, delete_network

        # Tagged pieces only: an adopted network has nothing of ours but the Lambdas' group.
        if self._ours(ctx):
            delete_network(ctx.client("ec2"), ctx.names.deployment, ctx.wait)
        else:
            delete_groups(ctx.client("ec2"), ctx.names.deployment, ctx.wait)


class KinesisStep(DriftStep):
    name = "kinesis"
    description = "telemetry Kinesis data stream"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.kinesis import stream_drift

        name = ctx.names.kinesis_stream
        return [("kinesis stream", name, stream_drift(ctx.client("kinesis"), name, ctx.names.tags(PHASE)))]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.kinesis import ensure_stream

        ensure_stream(ctx.client("kinesis"), ctx.names.kinesis_stream, ctx.names.tags(PHASE))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.kinesis import stream_arn

        names = ctx.names
        return {"kinesis_stream_arn": stream_arn(names.region, names.account_id, names.kinesis_stream, names.partition)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.kinesis import delete_stream

        delete_stream(ctx.client("kinesis"), ctx.names.kinesis_stream)


class FunctionLogGroupsStep(DriftStep):
    """Before the functions: Lambda creates a missing group on first invoke, untagged and kept forever."""

    name = "lambda-log-groups"
    description = "the functions' log groups (/aws/lambda/<function>), tagged, with pipeline.log_retention_days"

    @staticmethod
    def _groups(ctx: Context) -> list[str]:
        return [f"/aws/lambda/{ctx.names.lambda_function(fn)}" for fn in LAMBDA_FUNCTIONS]

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.events import log_group_drift

        logs, tags, days = ctx.client("logs"), ctx.names.tags(PHASE), ctx.config.pipeline.log_retention_days
        return [("log group", name, log_group_drift(logs, name, tags, days)) for name in self._groups(ctx)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.events import ensure_log_group

        logs, tags, days = ctx.client("logs"), ctx.names.tags(PHASE), ctx.config.pipeline.log_retention_days
        for name in self._groups(ctx):
            ensure_log_group(logs, name, tags, days)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"function_log_groups": self._groups(ctx)}

    def destroy(self, ctx: Context) -> None:
        # Destroy runs backwards, so the functions are gone and cannot write (and recreate) them again.
        from radstream.aws.events import delete_log_group

        logs = ctx.client("logs")
        for name in self._groups(ctx):
            delete_log_group(logs, name)


class FunctionsStep(DriftStep):
    name = "lambda"
    description = "dependency layer and the six pipeline functions (deterministic zips)"

    def _layer_zip(self, ctx: Context) -> bytes:
        from radstream.aws.packaging import layer_cache_path, layer_zip

        python = ctx.target.lambda_layer_python
        if not layer_cache_path(ctx.cache_dir, python=python).exists():
            ctx.log(f"building the Lambda layer for manylinux/CPython {python} (pip, once per requirements set)")
        return layer_zip(ctx.cache_dir, python=python).read_bytes()

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.lambda_ import current_layer_version, function_drift
        from radstream.aws.packaging import function_zip

        layer_arn = current_layer_version(ctx.client("lambda"), ctx.names.lambda_layer, self._layer_zip(ctx))
        found = [("lambda layer", ctx.names.lambda_layer, [] if layer_arn else ["missing"])]
        lam, tags, settings = ctx.client("lambda"), ctx.names.tags(PHASE), \
            documents.function_settings(ctx.names, ctx.config)
        vpc = function_vpc(ctx) or documents.function_vpc_before_network(ctx.names)
        for fn in LAMBDA_FUNCTIONS:
            name = ctx.names.lambda_function(fn)
            # Without the layer version the functions cannot be right yet: they will be updated.
            drift = function_drift(lam, name, zip_bytes=function_zip(ctx.root, fn),
                                   layers=[layer_arn or "(new layer version)"], tags=tags, vpc=vpc, **settings)
            found.append(("lambda function", name, drift))
        return found

    def apply(self, ctx: Context) -> None:
        from radstream.aws.lambda_ import ensure_function, ensure_layer
        from radstream.aws.packaging import function_zip

        lam, tags, settings = ctx.client("lambda"), ctx.names.tags(PHASE), \
            documents.function_settings(ctx.names, ctx.config)
        layer_arn, _ = ensure_layer(lam, ctx.names.lambda_layer, self._layer_zip(ctx),
                                    "numpy, pillow and pydicom for radstream.pipeline")
        vpc = function_vpc(ctx)
        if vpc is None:
            raise RadstreamError("the Lambdas' subnets or security group are missing", hint="run phase 0 again")
        for fn in LAMBDA_FUNCTIONS:
            ensure_function(lam, ctx.names.lambda_function(fn), zip_bytes=function_zip(ctx.root, fn),
                            layers=[layer_arn], tags=tags, vpc=vpc, **settings)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.lambda_ import current_layer_version

        return {"functions": documents.function_arns(ctx.names),
                "layer_arn": current_layer_version(ctx.client("lambda"), ctx.names.lambda_layer, self._layer_zip(ctx))}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.lambda_ import delete_function, delete_layer

        lam = ctx.client("lambda")
        for fn in LAMBDA_FUNCTIONS:
            delete_function(lam, ctx.names.lambda_function(fn))
        delete_layer(lam, ctx.names.lambda_layer)


class StateMachineStep(DriftStep):
    name = "state-machine"
    description = "the Step Functions pipeline (ASL from manifests/stepfunctions/pipeline.asl.json)"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.stepfunctions import state_machine_drift

        drift = state_machine_drift(ctx.client("stepfunctions"), documents.state_machine_arn(ctx.names),
                                    documents.state_machine_definition(ctx.names, ctx.config, ctx.root),
                                    documents.role_arn(ctx.names, "sfn"), ctx.names.tags(PHASE))
        return [("state machine", ctx.names.state_machine, drift)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.stepfunctions import ensure_state_machine

        ensure_state_machine(ctx.client("stepfunctions"), documents.state_machine_arn(ctx.names),
                             documents.state_machine_definition(ctx.names, ctx.config, ctx.root),
                             documents.role_arn(ctx.names, "sfn"), ctx.names.tags(PHASE))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"state_machine_arn": documents.state_machine_arn(ctx.names)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.stepfunctions import delete_state_machine

        delete_state_machine(ctx.client("stepfunctions"), documents.state_machine_arn(ctx.names))


class DeadLetterQueueStep(DriftStep):
    """Before the rules (image-uploaded's target names the queue), after the functions (StoreFailure
    reads it); destroyed after the rules, so nothing sends to a deleted queue."""

    name = "dead-letter-queue"
    description = ("the SQS queue of uploads EventBridge could not deliver (SSE-SQS, 14 days, only the rule may "
                   "send), read by StoreFailure into failed/")

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.sqs import mapping_drift, queue_drift

        names = ctx.names
        queue = queue_drift(ctx.client("sqs"), names.dead_letter_queue, documents.dead_letter_queue_attributes(names),
                            names.tags(PHASE))
        consumer = names.lambda_function("store_failure")
        # No mapping can exist before its queue: reading one would only be refused.
        mapping = ["missing"] if "missing" in queue else \
            mapping_drift(ctx.client("lambda"), documents.dead_letter_queue_arn(names), consumer)
        return [("sqs queue", names.dead_letter_queue, queue),
                ("lambda event source mapping", f"{names.dead_letter_queue} -> {consumer}", mapping)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.sqs import ensure_mapping, ensure_queue

        names = ctx.names
        ensure_queue(ctx.client("sqs"), names.dead_letter_queue, documents.dead_letter_queue_attributes(names),
                     names.tags(PHASE))
        ensure_mapping(ctx.client("lambda"), documents.dead_letter_queue_arn(names), names.lambda_function("store_failure"))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"dead_letter_queue_arn": documents.dead_letter_queue_arn(ctx.names)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.sqs import delete_mapping, delete_queue

        names = ctx.names
        delete_mapping(ctx.client("lambda"), documents.dead_letter_queue_arn(names), names.lambda_function("store_failure"))
        delete_queue(ctx.client("sqs"), names.dead_letter_queue)


class EventRulesStep(DriftStep):
    name = "eventbridge"
    description = ("uploads start the pipeline; failed executions are logged and, when no Catch did, recorded "
                   "in failed/")

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.events import log_group_drift, logs_resource_policy_drift, rule_drift
        from radstream.aws.lambda_ import invoke_permission_drift

        events, logs, tags = ctx.client("events"), ctx.client("logs"), ctx.names.tags(PHASE)
        policy_name, document = documents.logs_resource_policy(ctx.names, ctx.root)
        group = documents.failure_log_group(ctx.names)
        found = [
            ("log group", group, log_group_drift(logs, group, tags, 30)),
            ("logs resource policy", policy_name, logs_resource_policy_drift(logs, policy_name, document)),
        ]
        found += [("eventbridge rule", r.name, rule_drift(events, r.name, r.pattern, r.targets, tags))
                  for r in documents.event_rules(ctx.names)]
        permission = documents.failure_record_permission(ctx.names)
        found.append(("lambda permission", f"{permission['FunctionName']}/{permission['StatementId']}",
                      invoke_permission_drift(ctx.client("lambda"), permission["FunctionName"],
                                              permission["StatementId"], permission["Principal"],
                                              permission["SourceArn"])))
        return found

    def apply(self, ctx: Context) -> None:
        from radstream.aws.events import ensure_log_group, ensure_logs_resource_policy, ensure_rule
        from radstream.aws.lambda_ import ensure_invoke_permission

        events, logs, tags = ctx.client("events"), ctx.client("logs"), ctx.names.tags(PHASE)
        ensure_log_group(logs, documents.failure_log_group(ctx.names), tags, 30)
        ensure_logs_resource_policy(logs, *documents.logs_resource_policy(ctx.names, ctx.root))
        permission = documents.failure_record_permission(ctx.names)
        # Before the rule's target: an invoke EventBridge makes without it is refused and lost.
        ensure_invoke_permission(ctx.client("lambda"), permission["FunctionName"], permission["StatementId"],
                                 permission["Principal"], permission["SourceArn"])
        for r in documents.event_rules(ctx.names):
            ensure_rule(events, r.name, r.pattern, r.targets, tags, r.description)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"event_rules": [r.name for r in documents.event_rules(ctx.names)],
                "failure_log_group": documents.failure_log_group(ctx.names)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.events import delete_log_group, delete_logs_resource_policy, delete_rule
        from radstream.aws.lambda_ import delete_invoke_permission

        events, logs = ctx.client("events"), ctx.client("logs")
        for r in documents.event_rules(ctx.names):
            delete_rule(events, r.name)
        permission = documents.failure_record_permission(ctx.names)
        delete_invoke_permission(ctx.client("lambda"), permission["FunctionName"], permission["StatementId"])
        delete_logs_resource_policy(logs, documents.logs_resource_policy(ctx.names, ctx.root)[0])
        delete_log_group(logs, documents.failure_log_group(ctx.names))


class FirehoseStep(DriftStep):
    name = "firehose"
    description = "Firehose: telemetry stream -> telemetry bucket raw_telemetry/"

    def _settings(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.kinesis import stream_arn
        from radstream.aws.s3 import bucket_arn

        pipeline, names = ctx.config.pipeline, ctx.names
        return {
            "stream_arn": stream_arn(names.region, names.account_id, names.kinesis_stream, names.partition),
            "role_arn": documents.role_arn(ctx.names, "firehose"),
            "bucket_arn": bucket_arn(names.bucket("telemetry"), names.partition),
            "prefix": TELEMETRY_PREFIX,
            "size_mb": pipeline.firehose_buffer_mb,
            "interval_s": pipeline.firehose_buffer_seconds,
            "tags": ctx.names.tags(PHASE),
        }

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.firehose import delivery_stream_drift

        name = ctx.names.firehose_stream
        return [("firehose stream", name, delivery_stream_drift(ctx.client("firehose"), name, **self._settings(ctx)))]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.firehose import ensure_delivery_stream

        ensure_delivery_stream(ctx.client("firehose"), ctx.names.firehose_stream, **self._settings(ctx),
                               wait=lambda what, done: ctx.wait(what, done, timeout=600))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"firehose_stream": ctx.names.firehose_stream,
                "telemetry_prefix": f"s3://{ctx.names.bucket('telemetry')}/{TELEMETRY_PREFIX}"}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.firehose import delete_delivery_stream

        delete_delivery_stream(ctx.client("firehose"), ctx.names.firehose_stream)


class EcrStep(DriftStep):
    name = "ecr"
    description = "ECR repository for the serving image (scan on push, keep the last 10)"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.ecr import repository_drift

        name = ctx.names.ecr_repository
        return [("ecr repository", name, repository_drift(ctx.client("ecr"), name, ctx.names.tags(PHASE)))]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.ecr import ensure_repository

        ensure_repository(ctx.client("ecr"), ctx.names.ecr_repository, ctx.names.tags(PHASE))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.ecr import repository_uri

        return {"ecr_repository_uri": repository_uri(ctx.client("ecr"), ctx.names.ecr_repository)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.ecr import delete_repository

        delete_repository(ctx.client("ecr"), ctx.names.ecr_repository)


class GlueStep(DriftStep):
    name = "glue"
    description = "Glue database, JSON telemetry table and its crawler"

    def _arns(self, ctx: Context) -> tuple[str, str]:
        from radstream.aws.glue import glue_arn

        names = ctx.names
        return (glue_arn(names.region, names.account_id, "database", names.glue_database, names.partition),
                glue_arn(names.region, names.account_id, "crawler", names.glue_crawler, names.partition))

    def _location(self, ctx: Context) -> str:
        return f"s3://{ctx.names.bucket('telemetry')}/{TELEMETRY_PREFIX}"

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.glue import crawler_drift, database_drift, table_drift
        from radstream.pipeline.results import TELEMETRY_COLUMNS

        glue, names, tags = ctx.client("glue"), ctx.names, ctx.names.tags(PHASE)
        database_arn, crawler_arn = self._arns(ctx)
        database = database_drift(glue, names.glue_database, database_arn, tags)
        table = ["missing"] if "missing" in database else \
            table_drift(glue, names.glue_database, names.glue_table, self._location(ctx), TELEMETRY_COLUMNS)
        crawler = crawler_drift(glue, names.glue_crawler, crawler_arn, documents.role_arn(ctx.names, "glue-crawler"),
                                names.glue_database, names.glue_table, tags)
        return [("glue database", names.glue_database, database),
                ("glue table", f"{names.glue_database}.{names.glue_table}", table),
                ("glue crawler", names.glue_crawler, crawler)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.glue import ensure_crawler, ensure_database, ensure_table
        from radstream.pipeline.results import TELEMETRY_COLUMNS

        glue, names, tags = ctx.client("glue"), ctx.names, ctx.names.tags(PHASE)
        database_arn, crawler_arn = self._arns(ctx)
        ensure_database(glue, names.glue_database, database_arn, tags)
        ensure_table(glue, names.glue_database, names.glue_table, self._location(ctx), TELEMETRY_COLUMNS)
        ensure_crawler(glue, names.glue_crawler, crawler_arn, documents.role_arn(ctx.names, "glue-crawler"),
                       names.glue_database, names.glue_table, tags)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        names = ctx.names
        return {"glue_database": names.glue_database, "glue_table": names.glue_table,
                "glue_crawler": names.glue_crawler}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.events import delete_log_stream
        from radstream.aws.glue import CRAWLER_LOG_GROUP, delete_crawler, delete_database

        glue = ctx.client("glue")
        delete_crawler(glue, ctx.names.glue_crawler)
        delete_database(glue, ctx.names.glue_database)
        # The group is shared with every other crawler of the account: only our stream goes.
        delete_log_stream(ctx.client("logs"), CRAWLER_LOG_GROUP, ctx.names.glue_crawler)


class AthenaStep(DriftStep):
    name = "athena"
    description = "Athena workgroup with results in the telemetry bucket"

    def _args(self, ctx: Context) -> tuple[str, str, str, dict[str, str]]:
        from radstream.aws.athena import workgroup_arn

        names = ctx.names
        return (names.athena_workgroup,
                workgroup_arn(names.region, names.account_id, names.athena_workgroup, names.partition),
                f"s3://{names.bucket('telemetry')}/{ATHENA_PREFIX}", names.tags(PHASE))

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.athena import workgroup_drift

        drift = workgroup_drift(ctx.client("athena"), *self._args(ctx))
        return [("athena workgroup", ctx.names.athena_workgroup, drift)]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.athena import ensure_workgroup

        ensure_workgroup(ctx.client("athena"), *self._args(ctx))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        name, _, output, _ = self._args(ctx)
        return {"athena_workgroup": name, "athena_output": output}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.athena import delete_workgroup

        delete_workgroup(ctx.client("athena"), ctx.names.athena_workgroup)


class ClusterStep(DriftStep):
    name = "eks-cluster"
    description = ("EKS cluster: adopted by name when it exists, created otherwise (zones EKS and the node type "
                   "can use, a supported version, access entries for cluster.admin_principals)")

    def _creation(self, ctx: Context) -> tuple[dict[str, str], str, str]:
        """Checked before anything is created, so `plan` shows it and `up` stops first: the subnets
        (subnet -> zone), the Kubernetes version and its EKS support status."""
        from radstream.aws.eks import cluster_subnets, cluster_versions, default_version, support_status

        cluster_config, name = ctx.config.cluster, ctx.config.cluster_name
        if cluster_config.mode == "adopt":
            raise RadstreamError(f"EKS cluster {name} does not exist, and cluster.mode is adopt",
                                 hint="create it, fix cluster.name, or set cluster.mode: create")
        versions = cluster_versions(ctx.client("eks"))
        version = cluster_config.version or default_version(versions)
        support = support_status(versions, version)
        if support == "UNSUPPORTED":
            raise RadstreamError(f"EKS does not offer Kubernetes {version} for new clusters",
                                 hint="set cluster.version to a version EKS supports, or remove it for the default")
        if support != "STANDARD_SUPPORT":
            ctx.warn(f"Kubernetes {version} is past standard support ({support}): EKS charges six times the "
                     "standard hourly price for its control plane; remove cluster.version for the current default")
        subnets = private_subnets(ctx)
        if subnets is None:  # planned before the network exists: its zones
            subnets = {f"(private subnet in {zone})": zone for zone in network_layout(ctx).zones}
        else:  # EKS refuses some zones, and the node type is not offered in every zone
            subnets = cluster_subnets(ctx.client("ec2"), sorted(subnets), ctx.config.nodegroup.instance_type)
        return subnets, version, support

    def _access(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.eks import endpoint_access

        return endpoint_access(ctx.config.cluster.public_access_cidrs)

    def preflight(self, ctx: Context) -> None:
        """cluster.mode create never adopts a same-named cluster someone else made: refused before
        any change (radstream.engine lets a ConfigError through: exit 2)."""
        from radstream.aws.eks import describe_cluster, is_owned

        name = ctx.config.cluster_name
        if ctx.config.cluster.mode != "create":
            return
        cluster = describe_cluster(ctx.client("eks"), name)
        if cluster is not None and not is_owned(cluster, ctx.names.deployment):
            raise ConfigError(f"EKS cluster {name} exists and was not created by deployment {ctx.names.deployment}, "
                              "and cluster.mode is create",
                              hint=f"set cluster.mode: adopt to use {name} as it is, or another cluster.name "
                                   "to create one")

    def _operator_access(self, ctx: Context, cluster: dict[str, Any]) -> None:
        """An adopted cluster: say what access the operator needs, and refuse when EKS shows it has none."""
        from radstream.aws.eks import operator_access
        from radstream.aws.permissions import caller_identity

        caller = caller_identity(ctx.client("sts"))["Arn"]
        allowed, message = operator_access(ctx.client("eks"), cluster, caller)
        if allowed is False:
            raise RadstreamError(message, hint="ask the cluster's owner for an access entry, or use another cluster")
        ctx.log(message)
        if ctx.config.cluster.admin_principals:
            ctx.warn(f"cluster.admin_principals is not applied to the adopted cluster {cluster['name']}")

    def drifts(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.eks import access_entry_drift, admin_policy_arn, cluster_drift, existing_cluster, is_owned

        eks, name, principals = ctx.client("eks"), ctx.config.cluster_name, ctx.config.cluster.admin_principals
        self.preflight(ctx)
        drift = cluster_drift(eks, name, ctx.names.tags(PHASE), self._access(ctx))
        if "missing" in drift:
            subnets, version, support = self._creation(ctx)
            detail = [f"Kubernetes {version} ({support})", f"zones {', '.join(sorted(set(subnets.values())))}"]
            return [("eks cluster", name, drift + detail)] + [("eks access entry", p, ["missing"]) for p in principals]
        cluster = existing_cluster(eks, name)
        if not drift and cluster["status"] != "ACTIVE":
            drift = [f"status {cluster['status']}"]
        found = [("eks cluster", name, drift)]
        if not is_owned(cluster, ctx.names.deployment):
            self._operator_access(ctx, cluster)
        elif cluster["status"] == "ACTIVE":  # access entries are read once the cluster is up
            found += [("eks access entry", p, access_entry_drift(eks, name, p, admin_policy_arn(cluster)))
                      for p in principals]
        return found

    def apply(self, ctx: Context) -> None:
        from radstream.aws.eks import (
            admin_policy_arn,
            cluster_active,
            cluster_drift,
            delete_cluster,
            describe_cluster,
            ensure_access_entry,
            ensure_cluster,
            existing_cluster,
            is_owned,
        )

        eks, name, deployment, tags = ctx.client("eks"), ctx.config.cluster_name, ctx.names.deployment, \
            ctx.names.tags(PHASE)
        self.preflight(ctx)
        replace = [d for d in cluster_drift(eks, name, tags, self._access(ctx)) if d.startswith("replace:")]
        if replace:
            ctx.warn(f"EKS cluster {name}: {replace[0][9:]}; deleting and recreating it")
            delete_cluster(eks, name, deployment)
            ctx.wait(f"EKS cluster {name} deleted", lambda: describe_cluster(eks, name) is None,
                     timeout=1800, interval=15.0)
        creation: dict[str, Any] = {}
        if describe_cluster(eks, name) is None:
            subnets, version, _ = self._creation(ctx)
            creation = {"subnets": subnets, "version": version}
            ctx.log(f"creating EKS cluster {name}: Kubernetes {version} in {', '.join(sorted(set(subnets.values())))} "
                    "(about 10 minutes on AWS)")
            if "public_access_cidrs" not in ctx.config.cluster.model_fields_set:
                ctx.warn(f"EKS cluster {name}: its public API endpoint answers from anywhere (IAM still required); "
                         "set cluster.public_access_cidrs to your address, e.g. [\"203.0.113.7/32\"]")
        ensure_cluster(eks, name, role_arn=documents.role_arn(ctx.names, "eks-cluster"), tags=tags,
                       access=self._access(ctx), **creation)
        ctx.wait(f"EKS cluster {name} ACTIVE", lambda: cluster_active(eks, name, deployment),
                 timeout=1800, interval=15.0)
        cluster = existing_cluster(eks, name)
        if is_owned(cluster, deployment):
            for principal in ctx.config.cluster.admin_principals:
                ensure_access_entry(eks, name, principal, admin_policy_arn(cluster), tags)
        else:
            self._operator_access(ctx, cluster)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.eks import cluster_versions, existing_cluster, is_owned, support_status

        eks, name = ctx.client("eks"), ctx.config.cluster_name
        cluster = existing_cluster(eks, name)
        return {"cluster_name": name, "cluster_arn": cluster["arn"], "cluster_endpoint": cluster.get("endpoint"),
                "cluster_adopted": not is_owned(cluster, ctx.names.deployment),
                # What the control plane costs per hour depends on it (radstream.analytics.cost).
                "cluster_version": cluster["version"],
                "cluster_support": support_status(cluster_versions(eks), cluster["version"])}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import delete_cluster, describe_cluster, is_owned
        from radstream.phases.p3_expose import load_balancer_services, sweep_load_balancers

        eks, name = ctx.client("eks"), ctx.config.cluster_name
        cluster = describe_cluster(eks, name)
        # Deleting the cluster under a LoadBalancer Service strands its load balancer, billed.
        if cluster and cluster["status"] == "ACTIVE" and is_owned(cluster, ctx.names.deployment):
            services = load_balancer_services(ctx)
            if services:
                raise RadstreamError(f"EKS cluster {name} still has LoadBalancer Service(s) {', '.join(services)}: "
                                     "deleting it would leave their load balancers behind",
                                     hint="run `radstream phase destroy 3` first")
        if delete_cluster(eks, name, ctx.names.deployment):
            ctx.wait(f"EKS cluster {name} deleted", lambda: describe_cluster(eks, name) is None,
                     timeout=1800, interval=15.0)
        if describe_cluster(eks, name) is None:
            sweep_load_balancers(ctx, name)


class FoundationPhase(Phase):
    number = PHASE
    name = "foundation"
    summary = ("buckets, the de-identification key, IAM roles, Lambda functions and layer, Step Functions, EventBridge and its SQS dead-letter "
               "queue, Kinesis, Firehose, "
               "ECR, Glue, Athena and the EKS cluster")

    def preflight(self, ctx: Context) -> None:
        ClusterStep().preflight(ctx)

    def steps(self, ctx: Context) -> list[Step]:
        # Dependency order; destroy runs it backwards.
        return [BucketsStep(), DeidKeyStep(), RolesStep(), NetworkStep(), KinesisStep(), FunctionLogGroupsStep(), FunctionsStep(),
                StateMachineStep(), DeadLetterQueueStep(), EventRulesStep(),
                FirehoseStep(), EcrStep(), GlueStep(), AthenaStep(), ClusterStep()]
