"""The pipeline's floor: the deployed handlers called in this process, in the order the deployed state
machine gives, with the same S3, Kinesis and Triton calls and none of EventBridge, Step Functions or
the Lambda runtime in between.

The handlers are the files the function zips are built from (`lambdas/`), imported once and run with
the union of the functions' own environments and boto3 pointed at the target. The state machine is
followed as written: each Task's Resource names its function, a success goes to Next, an error is put
at the Catch's ResultPath as Step Functions' {Error, Cause} and goes to the Catch's Next. Retries are
not replayed: in one process nothing is throttled, and the studies bring their sidecars first."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any


class ChainError(Exception):
    """The deployed functions cannot be run here as they are."""


@dataclass
class ChainRun:
    """One study through the chain: ms per state entered, in order, and how it ended."""

    state_ms: dict[str, float] = field(default_factory=dict)
    outcome: str = "SUCCEEDED"  # or "FAILED": a Catch led to a Fail state


def load_handler(path: Any, function: str) -> Any:
    """`handler` of the handler file at `path`, under a module name of its own."""
    spec = importlib.util.spec_from_file_location(f"radstream_direct_{function}", path)
    if spec is None or spec.loader is None:
        raise ChainError(f"cannot load {path}")
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def merged_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """One process environment for all the functions; refused when two set one variable differently."""
    merged: dict[str, str] = {}
    owners: dict[str, str] = {}
    for function, variables in environments.items():
        for key, value in variables.items():
            if key in merged and merged[key] != value:
                raise ChainError(f"{owners[key]} and {function} set {key} differently: they cannot share one process")
            merged[key], owners[key] = value, function
    return merged


@contextmanager
def process_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `variables` set, restored afterwards."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _put_at(document: dict[str, Any], result_path: str, value: Any) -> dict[str, Any]:
    """`document` with `value` at a `$.a.b` ResultPath (the only form the pipeline's Catches use)."""
    if result_path == "$":
        return value
    if not result_path.startswith("$."):
        raise ChainError(f"ResultPath {result_path!r} is not of the form $.a.b")
    out = json.loads(json.dumps(document))
    target = out
    *parents, last = result_path[2:].split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value
    return out


def _caught(exc: Exception) -> dict[str, str]:
    """What a Catch puts at its ResultPath for a Lambda function's error."""
    kind = type(exc).__name__
    return {"Error": kind, "Cause": json.dumps({"errorMessage": str(exc), "errorType": kind, "stackTrace": []})}


class DirectChain:
    """The deployed state machine's Task chain, run in this process."""

    def __init__(self, definition: Mapping[str, Any], handlers: Mapping[str, Any]) -> None:
        """`definition`: the deployed ASL; `handlers`: each Task Resource (a function ARN) → its handler."""
        self.definition, self.handlers = definition, handlers
        missing = {s["Resource"] for s in definition["States"].values() if s["Type"] == "Task"} - set(handlers)
        if missing:
            raise ChainError(f"no handler for {sorted(missing)}")

    def run(self, event: dict[str, Any]) -> ChainRun:
        run = ChainRun()
        states, name, document = self.definition["States"], self.definition["StartAt"], event
        while True:
            state = states[name]
            if state["Type"] == "Fail":
                run.outcome = "FAILED"
                return run
            started = time.perf_counter()
            try:
                output = self.handlers[state["Resource"]](document, None)
            except Exception as exc:  # noqa: BLE001 - a handler's error goes where the Catch says
                run.state_ms[name] = (time.perf_counter() - started) * 1000
                catch = next((c for c in state.get("Catch", []) if "States.ALL" in c["ErrorEquals"]
                              or type(exc).__name__ in c["ErrorEquals"]), None)
                if catch is None:
                    raise
                document, name = _put_at(document, catch.get("ResultPath", "$"), _caught(exc)), catch["Next"]
                continue
            run.state_ms[name] = (time.perf_counter() - started) * 1000
            if state.get("End"):
                return run
            document, name = output, state["Next"]


def upload_event(bucket: str, key: str, version_id: str | None) -> dict[str, Any]:
    """The parts of EventBridge's S3 "Object Created" event the pipeline reads."""
    obj: dict[str, Any] = {"key": key}
    if version_id:
        obj["version-id"] = version_id
    return {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": bucket}, "object": obj}}
