"""What a phase sees of the world: config, names, state, clients for the target, waits, logging.

Phase code never asks which target it runs against: it asks `ctx.target` (radstream.targets) for
what differs, and the context points boto3 at the target's endpoint with its credentials."""

from __future__ import annotations

import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TypeVar

from radstream import load_runs, resources, runlog
from radstream.aws import operator_policy
from radstream.config import LoadedConfig
from radstream.counters import MutationCounter
from radstream.errors import WaitTimeout
from radstream.names import Names, partition_of
from radstream.reporting import Reporter
from radstream.state import State
from radstream.targets import target_for

T = TypeVar("T")


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
        self.target = target_for(loaded)
        self.current_phase: int | None = None
        self._clients: dict[str, Any] = {}

    # -- the target and its AWS ------------------------------------------------------------------
    def ensure_target_running(self) -> None:
        self.target.start(self.log)

    @property
    def aws_endpoint(self) -> str | None:
        return self.target.aws_endpoint

    @cached_property
    def boto_session(self):
        session = self.target.boto_session()
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
        from radstream.aws.permissions import caller_identity

        return caller_identity(self.client("sts"))

    @property
    def account_id(self) -> str:
        return self.caller_identity["Account"]

    @cached_property
    def names(self) -> Names:
        return Names(self.config.deployment, self.account_id, self.config.region,
                     partition_of(self.caller_identity["Arn"]))

    # -- state ----------------------------------------------------------------------------------
    @property
    def load_runs_file(self) -> Path:
        """Where `radstream load` records each run (radstream.load_runs), for the report to mark."""
        return self.state_dir / load_runs.FILE_NAME

    def outputs(self, phase: int) -> dict[str, Any]:
        return self.state.outputs(phase)

    def record(self, type_: str, id_: str, arn: str | None = None) -> None:
        """Remember a resource this phase created (teardown also finds it by tag)."""
        if self.current_phase is not None:
            self.state.record_resource(self.current_phase, type_, id_, arn)

    # -- waiting and talking --------------------------------------------------------------------
    def wait(
        self, description: str, predicate: Callable[[], T | None], timeout: float, interval: float = 2.0,
        max_interval: float | None = None,
    ) -> T:
        """Poll `predicate` until it returns something truthy; show a spinner meanwhile. With
        `max_interval` the pause grows by half each time up to it: quick for what is quick (the
        sandbox), few calls for what takes minutes (AWS)."""
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
                if max_interval is not None:
                    interval = min(interval * 1.5, max_interval)

    def log(self, message: str) -> None:
        self.reporter.log(message)

    def warn(self, message: str) -> None:
        self.reporter.warn(message)
