"""Settings from radstream.yaml plus RADSTREAM_* environment overrides, validated before anything runs.

An error names the field, the file and what is allowed; nothing is changed when the config is bad."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from radstream.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

CONFIG_FILE = "radstream.yaml"
ENV_PREFIX = "RADSTREAM_"
# Environment variables with this prefix that are not settings: the config file's path, and the
# sandbox daemon's own knobs (token lifetime, IAM propagation window), read by the daemon itself.
_ENV_NOT_SETTINGS = {"RADSTREAM_CONFIG"}
_ENV_NOT_SETTINGS_PREFIX = "RADSTREAM_SANDBOX_"


class _Section(BaseModel):
    # Defaults are spelled Field(default=...): type checkers do not see a positional one.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AwsSettings(_Section):
    endpoint_url: str | None = Field(default=None, description="Point at an external emulator (e.g. LocalStack).")
    profile: str | None = None

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value


def _ipv4_cidrs(value: list[str]) -> list[str]:
    import ipaddress

    try:
        return [str(ipaddress.IPv4Network(cidr)) for cidr in value]
    except ValueError as exc:
        raise ValueError(f"not IPv4 CIDR blocks: {exc}") from None


# An IAM role or user, as EKS access entries take them (not an STS assumed-role session).
_PRINCIPAL_ARN = r"^arn:aws(-cn|-us-gov)?:iam::\d{12}:(role|user)/[\w+=,.@/-]{1,512}$"


class ClusterSettings(_Section):
    name: str | None = Field(default=None, description="Defaults to <deployment>-cluster.")
    mode: Literal["create", "adopt"] = "create"
    # None: the version EKS offers by default in standard support on the day `up` runs.
    version: str | None = Field(default=None, pattern=r"^1\.\d{2}$")
    admin_principals: list[str] = Field(default_factory=list)
    # Who may reach the API endpoint from outside the VPC (nodes and Lambdas use its private side).
    public_access_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "subnet_ids" in data:
            raise ValueError("cluster.subnet_ids moved: set network.mode: adopt and network.subnet_ids")
        return data

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return _ipv4_cidrs(value)

    @field_validator("admin_principals")
    @classmethod
    def _principals(cls, value: list[str]) -> list[str]:
        import re

        bad = [arn for arn in value if not re.match(_PRINCIPAL_ARN, arn)]
        if bad:
            raise ValueError(f"not IAM role or user ARNs (arn:aws:iam::<account>:role/<name>): {bad}")
        return value


# EKS's default quota "Nodes per managed node group" (L-BD136A63).
_NODEGROUP_MAX_NODES = 450


class NodegroupSettings(_Section):
    name: str = Field(default="cpu-ng", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    instance_type: str = Field(default="t3.medium", pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    min_size: int = Field(default=1, ge=0, le=_NODEGROUP_MAX_NODES)
    desired_size: int = Field(default=1, ge=0, le=_NODEGROUP_MAX_NODES)
    max_size: int = Field(default=2, ge=1, le=_NODEGROUP_MAX_NODES)
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[dict[str, str]] = Field(default_factory=list)
    drain_timeout_seconds: int = Field(default=300, ge=10, le=3600)
    # EKS diskSize: the root volume, which holds every pulled image. EKS's own default, 20 GiB,
    # cannot hold the stock Triton image (~15.5 GB unpacked); 100 holds it with room to spare.
    disk_gib: int = Field(default=100, ge=20, le=16384)
    # Other nodegroups phase 1 drains and deletes although this deployment did not create them
    # (its own, tagged radstream:deployment, always are); anyone else's are left alone.
    replace: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")]] = Field(default_factory=list)

    @field_validator("instance_type")
    @classmethod
    def _sized(cls, value: str) -> str:
        from radstream.kube.capacity import INSTANCE_TYPES

        if value not in INSTANCE_TYPES:
            raise ValueError(
                f"{value!r} is not in RadStream's instance table (it sizes pods per node from it): use one of "
                f"{', '.join(sorted(INSTANCE_TYPES))}, or add it to INSTANCE_TYPES in radstream/kube/capacity.py "
                "with its ENIs, IPv4 addresses per ENI, vCPUs, memory and GPUs "
                f"(aws ec2 describe-instance-types --instance-types {value})")
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        from radstream.kube.syntax import label_problems

        if problems := label_problems(value):
            raise ValueError("not Kubernetes labels: " + "; ".join(problems))
        return value

    @field_validator("taints")
    @classmethod
    def _taints(cls, value: list[dict[str, str]]) -> list[dict[str, str]]:
        from radstream.kube.syntax import taint_problems

        if problems := taint_problems(value):
            raise ValueError("not taints EKS accepts: " + "; ".join(problems))
        return value

    @model_validator(mode="after")
    def _sizes(self) -> NodegroupSettings:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError("need min_size <= desired_size <= max_size")
        if self.name in self.replace:
            raise ValueError(f"replace lists {self.name}, the nodegroup phase 1 creates: it cannot replace itself")
        return self


class NetworkSettings(_Section):
    # create: the deployment's own VPC; adopt: subnet_ids the user names (checked, never changed).
    mode: Literal["create", "adopt"] = "create"
    cidr: str = "10.42.0.0/16"
    zones: int = Field(default=2, ge=2, le=6)
    no_internet_egress: bool = False
    subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(default_factory=list)
    # With mode adopt and expose.public: the public subnets (two zones or more) the door's load balancer goes in.
    public_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = Field(default_factory=list)

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        import ipaddress

        try:
            network = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"not an IPv4 CIDR block: {exc}") from None
        # Subnets are a sixteenth of it: /20 keeps 256 addresses per subnet for nodes, pods and ENIs.
        if not (16 <= network.prefixlen <= 20 and network.is_private):
            raise ValueError("must be a private (RFC 1918) block from /16 to /20")
        return str(network)

    @model_validator(mode="after")
    def _subnets(self) -> NetworkSettings:
        if (self.mode == "adopt") != bool(self.subnet_ids):
            raise ValueError("subnet_ids are named with mode adopt, and only then")
        return self


class TritonSettings(_Section):
    model_name: str = Field(default="radstream_cxr", pattern=r"^[a-z][a-z0-9_]{0,62}$")
    namespace: str = Field(default="radstream", pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
    replicas: int = Field(default=1, ge=1, le=20)
    # The HPA adds pods above this share of their requested CPU, and removes them only once every
    # recommendation over the scale-down window agrees (Kubernetes' defaults: 300 s).
    target_cpu_utilization: int = Field(default=70, ge=1, le=100)
    scale_down_window_seconds: int = Field(default=300, ge=0, le=3600)
    base_image: str = "nvcr.io/nvidia/tritonserver:24.08-py3"
    builder: Literal["daemonless", "docker", "buildah", "podman"] = "daemonless"
    # Covers a node's first pull of the serving image: ~8 GB compressed at a pessimistic 8 MB/s is
    # ~1000 s, unpacking ~15.5 GB a few minutes more, then Triton loads the model.
    rollout_timeout_seconds: int = Field(default=1800, ge=30, le=7200)


# What AWS WAF's rate-based rules accept: a limit of at least 10 requests per window of these lengths.
RATE_WINDOWS_SECONDS = (60, 120, 300, 600)


class ExposeSettings(_Section):
    # The public door: an internet-facing ALB with a WAF web ACL in front of Triton's HTTP API. Off:
    # Triton is reachable only inside the VPC.
    public: bool = False
    # Who may reach the door (its security group admits 443 from these only).
    allowed_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    # The user's own ACM certificate for the door (their domain, publicly trusted); None: the
    # deployment's certificate, which clients verify against the deployment's CA.
    certificate_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]+$")
    # The name clients use (a DNS record of theirs pointing at the load balancer); None: its own DNS name.
    hostname: str | None = Field(default=None, pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
    # Requests one client address may send per window before the WAF answers 429.
    rate_limit: int = Field(default=300, ge=10, le=2_000_000_000)
    rate_window_seconds: int = 300

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        return _ipv4_cidrs(value)

    @field_validator("rate_window_seconds")
    @classmethod
    def _window(cls, value: int) -> int:
        if value not in RATE_WINDOWS_SECONDS:
            raise ValueError(f"AWS WAF's rate-based rules accept only {', '.join(map(str, RATE_WINDOWS_SECONDS))}")
        return value

    @model_validator(mode="after")
    def _hostname_with_certificate(self) -> ExposeSettings:
        if self.hostname and not self.certificate_arn:
            raise ValueError("hostname goes with certificate_arn: the deployment's own certificate names only the "
                             "load balancer's DNS name")
        return self


class SecuritySettings(_Section):
    # An account-wide GuardDuty detector (billed by the events it analyses); `security test` reports
    # its findings. One that exists already is read, never changed or deleted.
    guardduty: bool = False


class ObservabilitySettings(_Section):
    # Alarms notify one SNS topic; this address is subscribed to it (AWS mails a confirmation link
    # first, and sends nothing until it is followed).
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # A monthly AWS Budgets cost budget over everything tagged with the deployment; 0 for none.
    monthly_budget_usd: float = Field(default=100.0, ge=0, le=1_000_000)
    # A Prometheus scraping Triton (manifests/prometheus/podmonitor.yaml), which `radstream watch`
    # reads Triton's queue and compute time from; the sandbox runs its own.
    prometheus_url: str | None = Field(default=None, pattern=r"^https?://")


# The only retention periods CloudWatch Logs' PutRetentionPolicy accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)


class PipelineSettings(_Section):
    max_image_bytes: int = Field(default=64 * 1024 * 1024, ge=1024,
                                 description="Larger objects are quarantined by ValidateInput (MAX_IMAGE_BYTES).")
    max_pixels: int = Field(default=64_000_000, ge=224 * 224,
                            description="Larger images are quarantined before decoding (MAX_PIXELS).")
    sidecar_wait_seconds: int = Field(default=30, ge=0, le=600,
                                      description="The state machine's retries of a missing sidecar span this long.")
    firehose_buffer_seconds: int = Field(default=60, ge=0, le=900)
    firehose_buffer_mb: int = Field(default=1, ge=1, le=128)
    log_retention_days: int = Field(default=30, description="Retention of the Lambda functions' log groups.")

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, LOG_RETENTION_DAYS))}")
        return value


class Config(_Section):
    target: Literal["sandbox", "aws"] = "sandbox"
    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    deployment: str = Field(
        default="radstream",
        pattern=r"^[a-z][a-z0-9-]{1,22}[a-z0-9]$",
        description="Id every resource name derives from.",
    )
    aws: AwsSettings = Field(default_factory=AwsSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    nodegroup: NodegroupSettings = Field(default_factory=NodegroupSettings)
    triton: TritonSettings = Field(default_factory=TritonSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    expose: ExposeSettings = Field(default_factory=ExposeSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)

    @model_validator(mode="after")
    def _sandbox_defaults(self) -> Config:
        # On one machine there is nothing to save by buffering telemetry for a minute.
        if self.target == "sandbox" and "firehose_buffer_seconds" not in self.pipeline.model_fields_set:
            self.pipeline.firehose_buffer_seconds = 1
        return self

    @model_validator(mode="after")
    def _adopted_cluster_network(self) -> Config:
        # An adopted cluster keeps its own VPC: a network of ours would not reach it.
        if self.cluster.mode == "adopt" and "mode" in self.network.model_fields_set and self.network.mode == "create":
            raise ValueError("network.mode create cannot go with cluster.mode adopt: the adopted cluster keeps its "
                             "own network (leave network.mode out, or adopt subnets of the cluster's VPC)")
        return self

    @model_validator(mode="after")
    def _door_subnets(self) -> Config:
        adopted = "adopt" in (self.network.mode, self.cluster.mode)
        if self.network.public_subnet_ids and not (adopted and self.expose.public):
            raise ValueError("network.public_subnet_ids go with an adopted network or cluster and expose.public, "
                             "and only then")
        if adopted and self.expose.public and len(self.network.public_subnet_ids) < 2:
            raise ValueError("expose.public in an adopted network needs network.public_subnet_ids: public subnets in "
                             "two zones or more (an application load balancer needs two)")
        return self

    @property
    def cluster_name(self) -> str:
        return self.cluster.name or f"{self.deployment}-cluster"


class LoadedConfig(BaseModel):
    """A validated config and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    settings: Config
    path: Path
    exists: bool

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def state_dir(self) -> Path:
        return self.project_dir / ".radstream"


def resolve_path(path: Path | None) -> Path:
    return (path or Path.cwd() / CONFIG_FILE).expanduser().resolve()


def env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """RADSTREAM_TARGET=aws, RADSTREAM_NODEGROUP__INSTANCE_TYPE=t3.large → nested dict.
    Values are read as YAML scalars so numbers and booleans keep their type."""
    import yaml

    overrides: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key in _ENV_NOT_SETTINGS or key.startswith(_ENV_NOT_SETTINGS_PREFIX):
            continue
        parts = key[len(ENV_PREFIX):].lower().split("__")
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return overrides


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ErrorDetails, source: str) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "extra_forbidden":
        what = "is not a known setting (check the spelling; `radstream init` writes every setting with a comment)"
    elif kind == "literal_error":
        what = f"must be one of {error.get('ctx', {}).get('expected', '')}, got {error.get('input')!r}"
    elif kind == "string_pattern_mismatch":
        what = f"must match {error['ctx']['pattern']}, got {error.get('input')!r}"
    else:
        what = f"{error['msg']} (got {error.get('input')!r})"
    return f"{field}: {what} [{source}]"


def validate(data: dict[str, Any], source: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, source) for e in exc.errors()]
        raise ConfigError(
            "invalid configuration:\n  " + "\n  ".join(lines),
            hint="fix the field(s) above; nothing was changed",
        ) from None


def load(path: Path | None = None, environ: dict[str, str] | None = None) -> LoadedConfig:
    """Read radstream.yaml (optional: defaults apply when absent), apply RADSTREAM_* overrides, validate."""
    import yaml

    config_path = resolve_path(path)
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = {}
    if config_path.exists():
        try:
            loaded = yaml.safe_load(config_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}", hint="fix the syntax; nothing was changed") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping of settings")
        data = loaded
    elif path is not None:
        raise ConfigError(f"config file {config_path} does not exist", hint="run `radstream init` to write one")
    overrides = env_overrides(environ)
    source = str(config_path) + (" + RADSTREAM_* environment" if overrides else "")
    return LoadedConfig(settings=validate(_merge(data, overrides), source), path=config_path, exists=config_path.exists())


def template() -> str:
    from importlib.resources import files

    return files("radstream").joinpath("radstream.template.yaml").read_text()
