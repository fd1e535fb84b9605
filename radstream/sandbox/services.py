"""What the sandbox daemon hosts: a list of services started in order and stopped in reverse.

A service is anything with a `name`, `start() -> endpoints` and `stop()`; it may also expose a
`logs` dict (label -> path) that the daemon publishes in sandbox.json. What start() returns goes
into `published` (the daemon's map, see daemon.PUBLISHED_KEYS), where services started later find
the endpoints of earlier ones. Order: AWS, the OCI registry, Triton, Prometheus (scraping Triton), then Kubernetes (its EKS sync
reads the AWS endpoint, its Triton hooks the Triton ones). The registry, Triton and Prometheus are skipped with
a warning when their software is missing; their keys are then null in sandbox.json."""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from radstream.errors import RadstreamError

if TYPE_CHECKING:
    from radstream.inference.triton_local import LocalTriton

log = logging.getLogger(__name__)


@runtime_checkable
class Service(Protocol):
    name: str

    def start(self) -> dict[str, str]: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class SandboxOptions:
    """What the daemon needs to know to build its services (from radstream.yaml via the CLI)."""

    state_dir: Path
    region: str = "us-east-1"
    # An emulator the user already runs (e.g. LocalStack): then no embedded AWS is started.
    aws_endpoint_url: str | None = None

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def cache_dir(self) -> Path:
        return self.state_dir / "sandbox-cache"


class ExternalAws:
    """An AWS emulator run by someone else: nothing to start, only its endpoint to publish."""

    name = "aws"

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")

    def start(self) -> dict[str, str]:
        return {"aws_endpoint": self.endpoint_url}

    def stop(self) -> None:
        return None


class SandboxTriton:
    """The local Triton on the repository's model_repo/ (the default model is built if missing)."""

    name = "triton"

    def __init__(self, repo_dir: Path, work_dir: Path, log_dir: Path) -> None:
        self.repo_dir, self.work_dir, self.log_dir = Path(repo_dir), Path(work_dir), Path(log_dir)
        self.logs: dict[str, str] = {}
        self._triton: LocalTriton | None = None

    def start(self) -> dict[str, str]:
        from radstream.inference.model import MODEL_NAME
        from radstream.inference.repository import build_repository, versions
        from radstream.inference.triton_local import LocalTriton

        if importlib.util.find_spec("pytriton") is None:
            log.warning("no Triton in the sandbox: nvidia-pytriton is not installed; pip install 'radstream[sandbox]'")
            return {}
        if not versions(self.repo_dir / MODEL_NAME):
            log.info("building the default model into %s", self.repo_dir)
            build_repository(self.repo_dir)
        self._triton = LocalTriton(self.repo_dir, self.work_dir)
        endpoints = self._triton.start()
        # `radstream sandbox logs` reads logs/*.log; Triton writes its log in its work dir.
        link = self.log_dir / "triton.log"
        link.unlink(missing_ok=True)
        os.symlink(self._triton.log_path, link)
        self.logs = {"triton": str(link)}
        log.info("Triton serving %s on %s", MODEL_NAME, endpoints["triton_http"])
        # The Kubernetes emulator shows it as the Triton pods' `kubectl logs`.
        # Its pid and metrics endpoint: what the sandbox's metrics-server and Prometheus read.
        return {**endpoints, "triton_log": str(self._triton.log_path), "triton_pid": str(getattr(self._triton.process, "pid", "")),
                "triton_metrics": self._triton.metrics_url or ""}

    def serve(self, repo_dir: Path) -> None:
        """Serve another model repository from now on (a Triton pod's image: radstream.sandbox.served_image)."""
        if self._triton is None:
            raise RadstreamError("the sandbox runs no Triton", "pip install 'radstream[sandbox]', then restart the sandbox")
        self._triton.serve(repo_dir)

    def stop(self) -> None:
        if self._triton is not None:
            self._triton.stop()


def build_services(options: SandboxOptions, published: Mapping[str, str]) -> list[Service]:
    """The daemon's services, in start order; `published` fills up as they start."""
    from radstream.resources import model_repository
    from radstream.sandbox import LOAD_BALANCERS_FILE
    from radstream.sandbox.aws_emulator import EmbeddedAws
    from radstream.sandbox.cluster import SandboxKubernetes
    from radstream.sandbox.prometheus import SandboxPrometheus
    from radstream.sandbox.registry import SandboxRegistry
    from radstream.sandbox.served_image import ServedImage

    aws: Service = (
        ExternalAws(options.aws_endpoint_url)
        if options.aws_endpoint_url
        else EmbeddedAws(cache_dir=options.cache_dir, log_dir=options.log_dir, region=options.region)
    )
    triton = SandboxTriton(model_repository(options.state_dir), options.state_dir / "triton", options.log_dir)
    return [
        aws,
        SandboxRegistry(options.state_dir / "registry", options.log_dir),
        triton,
        SandboxPrometheus(options.state_dir / "prometheus", options.log_dir, published),
        SandboxKubernetes(published, options.region, ca_dir=options.state_dir / "sandbox-ca",
                          tls_dir=options.state_dir / "tls-fronts",
                          load_balancers_path=options.state_dir / LOAD_BALANCERS_FILE,
                          served=ServedImage(triton.serve, options.state_dir / "served-image")),
    ]
