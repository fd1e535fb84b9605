"""What the sandbox daemon hosts: a list of services started in order and stopped in reverse.

A service is anything with a `name`, `start() -> endpoints` and `stop()`; it may also expose a
`logs` dict (label -> path) that the daemon publishes in sandbox.json. The endpoint keys are the
ones sandbox.json carries: aws_endpoint, kubernetes_endpoint, triton_http, triton_grpc."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


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


def build_services(options: SandboxOptions) -> list[Service]:
    """The daemon's services, in start order. Append new ones here (Kubernetes emulator, Triton)."""
    from radstream.sandbox.aws_emulator import EmbeddedAws

    aws: Service = (
        ExternalAws(options.aws_endpoint_url)
        if options.aws_endpoint_url
        else EmbeddedAws(cache_dir=options.cache_dir, log_dir=options.log_dir, region=options.region)
    )
    return [aws]
