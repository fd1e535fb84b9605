"""What a target is: how to start it, the boto3 session and endpoint, the Kubernetes API and the
image registry it offers, the query engine over its telemetry, and what tearing it down means."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from pathlib import Path

    from radstream.config import LoadedConfig

ClientFactory = Callable[[str], Any]  # service name -> boto3 client (Context.client)


@dataclass(frozen=True)
class KubeAccess:
    host: str
    ca_file: Path  # the CA the API's certificate is verified against
    name: str  # what kubeconfigs call the cluster (its ARN on EKS, as `aws eks update-kubeconfig` does)


@dataclass(frozen=True)
class Registry:
    repository: str  # host/name, no tag
    base_image: str
    credentials: tuple[str, str] | None  # kept in memory only


class Target(ABC):
    name: str
    billable: bool  # creating resources costs money, so commands ask first
    query_engine: str  # "athena" or "duckdb"
    has_cost_explorer: bool
    guardduty_findings: bool  # GuardDuty keeps findings to read (the sandbox's moto has no ListFindings)
    lambda_layer_python: str  # the Python the Lambda layer's wheels are built for
    lambda_memory_matters: bool  # Lambda's CPU follows its memory size (not on one local machine)
    function_concurrency: int | None  # concurrent executions one function gets (None: the account's to give)
    runs_on_this_machine: bool  # what it runs, it runs here: this machine's timings are its own
    # Names beyond the load balancer's that Triton's TLS certificate must also carry (DNS, IP).
    tls_extra_names: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded, self.settings, self.state_dir = loaded, loaded.settings, loaded.state_dir

    @abstractmethod
    def start(self, log: Callable[[str], None]) -> None:
        """Make the target reachable (start the local daemon); nothing to do for a cloud."""

    @property
    @abstractmethod
    def aws_endpoint(self) -> str | None:
        """The AWS endpoint override (None: AWS's own endpoints)."""

    @abstractmethod
    def boto_session(self) -> Any:
        """A boto3 session with the target's credentials and region."""

    @abstractmethod
    def kube_access(self, client: ClientFactory, cluster_name: str) -> KubeAccess:
        """Where the cluster's API is, how to trust it, and what kubeconfigs call it."""

    @abstractmethod
    def kube_token_session(self) -> Any | None:
        """The boto3 session the cluster's EKS tokens are signed with (None: the deployment's own)."""

    @abstractmethod
    def image_registry(self, client: ClientFactory, repository_name: str) -> Registry:
        """Where the serving image is pushed, with what it is built on."""

    @abstractmethod
    def load_balancer_url(self, dns_name: str) -> str | None:
        """Where clients reach an application load balancer by its DNS name; None while it does not serve."""

    def triton_control_url(self) -> str | None:
        """The one Triton serving this deployment that the CLI can reach directly, to reload its model
        (None where Triton runs as pods behind a load balancer)."""
        return None

    def prometheus_url(self) -> str | None:
        """A Prometheus that scrapes Triton (observability.prometheus_url; the sandbox runs its own)."""
        return self.settings.observability.prometheus_url

    @abstractmethod
    def running(self) -> bool:
        """Whether the target answers now (a cloud always does)."""

    @abstractmethod
    def account_discarded(self) -> bool:
        """True when the account can hold nothing of ours (a stopped sandbox discards its world)."""

    @abstractmethod
    def finish_teardown(self, stop_local: bool, warn: Callable[[str], None]) -> dict[str, Any]:
        """What follows a teardown (stopping the local daemon when asked); extra report keys."""

    @abstractmethod
    def doctor_checks(self) -> list[dict[str, Any]]:
        """What this target needs beyond the common Python modules."""
