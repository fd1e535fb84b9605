"""What a phase sees of the world: config, names, state, clients for the target, waits, logging.

Phase code never asks which target it runs against; the context points boto3 (and later the
kubernetes and Triton clients) at real AWS or at the local sandbox."""

from __future__ import annotations

import json
import os
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TypeVar

from radstream import resources, runlog
from radstream.aws import operator_policy
from radstream.config import LoadedConfig
from radstream.counters import MutationCounter
from radstream.errors import RadstreamError, WaitTimeout
from radstream.names import Names, partition_of
from radstream.reporting import Reporter
from radstream.state import State

T = TypeVar("T")

SANDBOX_FILE = "sandbox.json"
# moto accepts any credentials; these make sure real ones are never sent to the sandbox.
SANDBOX_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def user_cache_dir() -> Path:
    """Content-addressed caches (Lambda layer builds, fetched objects) shared by every deployment."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "radstream"


class Context:
    def __init__(
        self,
        loaded: LoadedConfig,
        state: State,
        reporter: Reporter | None = None,
        counter: MutationCounter | None = None,
    ):
        self.loaded = loaded
        self.config = loaded.settings
        self.state = state
        self.reporter = reporter or Reporter()
        self.counter = counter or MutationCounter()
        self.root = resources.root()
        self.state_dir = loaded.state_dir
        self.cache_dir = user_cache_dir()
        self.current_phase: int | None = None
        self._clients: dict[str, Any] = {}

    # -- AWS ------------------------------------------------------------------------------------
    @cached_property
    def sandbox(self) -> dict[str, Any]:
        """Endpoints of the running sandbox daemon (sandbox target only)."""
        path = self.state_dir / SANDBOX_FILE
        try:
            info = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise RadstreamError(
                "the sandbox is not running", hint="start it with `radstream sandbox start` (up and demo start it for you)"
            ) from None
        return info

    def ensure_target_running(self) -> None:
        """The sandbox target starts its daemon when it is not running; aws needs nothing."""
        if self.config.target != "sandbox":
            return
        from radstream.sandbox import daemon

        if not daemon.status(self.state_dir).get("running"):
            self.log("starting the local sandbox (emulated AWS, Kubernetes API emulator, Triton)…")
            daemon.start(self.state_dir, region=self.config.region, aws_endpoint_url=self.config.aws.endpoint_url)
            self.__dict__.pop("sandbox", None)  # read the new daemon's endpoints, not a stale file's

    @property
    def aws_endpoint(self) -> str | None:
        if self.config.aws.endpoint_url:
            return self.config.aws.endpoint_url
        if self.config.target == "sandbox":
            return self.sandbox["aws_endpoint"]
        return None

    @property
    def lambda_layer_python(self) -> str:
        """The Python the Lambda layer is built for: Lambda's on aws; on the sandbox, whose functions
        run in this interpreter, this one (its wheels must load here)."""
        from radstream.aws.packaging import LAMBDA_PYTHON

        if self.config.target == "sandbox":
            return f"{sys.version_info.major}.{sys.version_info.minor}"
        return LAMBDA_PYTHON

    @cached_property
    def boto_session(self):
        import boto3

        if self.config.target == "sandbox":
            session = boto3.Session(region_name=self.config.region, **SANDBOX_CREDENTIALS)
        else:
            session = boto3.Session(region_name=self.config.region, profile_name=self.config.aws.profile)
        session.events.register("after-call", self.counter.botocore_hook)
        runlog.watch_aws(session.events)
        session.events.register("before-call", operator_policy.botocore_hook)
        return session

    def client(self, service: str):
        if service not in self._clients:
            from botocore.config import Config as BotoConfig

            boto_config = BotoConfig(
                retries={"mode": "adaptive", "max_attempts": 10}, connect_timeout=10, read_timeout=70
            )
            self._clients[service] = self.boto_session.client(
                service, endpoint_url=self.aws_endpoint, config=boto_config
            )
        return self._clients[service]

    @cached_property
    def caller_identity(self) -> dict[str, Any]:
        return self.client("sts").get_caller_identity()

    @property
    def account_id(self) -> str:
        return self.caller_identity["Account"]

    @cached_property
    def names(self) -> Names:
        return Names(self.config.deployment, self.account_id, self.config.region,
                     partition_of(self.caller_identity["Arn"]))

    # -- state ----------------------------------------------------------------------------------
    def outputs(self, phase: int) -> dict[str, Any]:
        return self.state.outputs(phase)

    def record(self, type_: str, id_: str, arn: str | None = None) -> None:
        """Remember a resource this phase created (teardown also finds it by tag)."""
        if self.current_phase is not None:
            self.state.record_resource(self.current_phase, type_, id_, arn)

    # -- waiting and talking --------------------------------------------------------------------
    def wait(
        self, description: str, predicate: Callable[[], T], timeout: float, interval: float = 2.0
    ) -> T:
        """Poll `predicate` until it returns something truthy; show a spinner meanwhile."""
        deadline = time.monotonic() + timeout
        with self.reporter.waiting(description, timeout):
            while True:
                value = predicate()
                if value:
                    return value
                if time.monotonic() >= deadline:
                    raise WaitTimeout(
                        f"timed out after {timeout:.0f}s waiting for: {description}",
                        hint="run the same command again to keep waiting, or `radstream status --refresh` to see what is wrong",
                    )
                time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def log(self, message: str) -> None:
        self.reporter.log(message)

    def warn(self, message: str) -> None:
        self.reporter.warn(message)
