"""Every resource name derives from the deployment id, so two deployments never collide and
teardown can find everything by name as well as by tag. Pure: no client in here."""

from __future__ import annotations

from dataclasses import dataclass

TAG_DEPLOYMENT = "radstream:deployment"
TAG_PHASE = "radstream:phase"

BUCKET_KINDS = ("images", "results", "telemetry", "artifacts")
# Where Firehose writes telemetry in the telemetry bucket, and where uploads start the pipeline.
TELEMETRY_PREFIX = "raw_telemetry/"
INCOMING_PREFIX = "incoming/"
LAMBDA_FUNCTIONS = (
    "validate_metadata",
    "prepare_tensors",
    "invoke_inference",
    "store_results",
    "send_telemetry",
    "store_failure",
)


def partition_of(caller_arn: str) -> str:
    """The partition of an ARN (arn:aws-us-gov:sts::…): aws, aws-cn, aws-us-gov, … Every ARN we
    build takes the caller's, so a deployment works the same in every partition."""
    return caller_arn.split(":")[1]


@dataclass(frozen=True)
class Names:
    deployment: str
    account_id: str
    region: str
    partition: str = "aws"

    def bucket(self, kind: str) -> str:
        # S3 names are global: the account id keeps them unique across accounts.
        return f"{self.deployment}-{kind}-{self.account_id}"

    def buckets(self) -> dict[str, str]:
        return {kind: self.bucket(kind) for kind in BUCKET_KINDS}

    def lambda_function(self, handler: str) -> str:
        return f"{self.deployment}-{handler.replace('_', '-')}"

    def role(self, purpose: str) -> str:
        return f"{self.deployment}-{purpose}-role"

    @property
    def state_machine(self) -> str:
        return f"{self.deployment}-pipeline"

    @property
    def dead_letter_queue(self) -> str:
        """Where EventBridge puts the uploads it could not hand to the pipeline."""
        return f"{self.deployment}-undelivered"

    @property
    def deid_key_secret(self) -> str:
        """The Secrets Manager secret holding the de-identification key (radstream.aws.secrets)."""
        return f"{self.deployment}-deid-key"

    @property
    def kinesis_stream(self) -> str:
        return f"{self.deployment}-telemetry"

    @property
    def firehose_stream(self) -> str:
        return f"{self.deployment}-telemetry-firehose"

    @property
    def ecr_repository(self) -> str:
        return f"{self.deployment}-triton"

    @property
    def glue_database(self) -> str:
        return f"{self.deployment.replace('-', '_')}_analytics"

    @property
    def glue_table(self) -> str:
        return "raw_telemetry"

    @property
    def glue_crawler(self) -> str:
        return f"{self.deployment}-telemetry-crawler"

    @property
    def athena_workgroup(self) -> str:
        return f"{self.deployment}-analytics"

    def launch_template(self, nodegroup: str) -> str:
        return f"{self.deployment}-{nodegroup}-nodes"

    @property
    def lambda_layer(self) -> str:
        return f"{self.deployment}-pipeline-deps"

    def event_rule(self, purpose: str) -> str:
        return f"{self.deployment}-{purpose}"

    def tags(self, phase: int) -> dict[str, str]:
        return {TAG_DEPLOYMENT: self.deployment, TAG_PHASE: str(phase)}
