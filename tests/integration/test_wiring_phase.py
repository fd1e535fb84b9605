"""Phases 0-4 on a real sandbox daemon: from nothing to a wired pipeline whose uploaded study gets a
result with 14 findings; a second run changes nothing; destroying phase 4 unwires the Lambda."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases.p0_foundation import FoundationPhase
from radstream.phases.p1_nodegroup import NodegroupPhase
from radstream.phases.p2_triton import TritonPhase
from radstream.phases.p3_expose import ExposePhase
from radstream.phases.p4_wiring import ENDPOINT_VARIABLE, WiringPhase
from radstream.state import State
from tests.integration.sandbox_fixtures import sandbox_project

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-wire"


def phases() -> list[Any]:
    return [FoundationPhase(), NodegroupPhase(), TritonPhase(), ExposePhase(), WiringPhase()]


def make_ctx(project: Path) -> Context:
    loaded = config.load(project / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with sandbox_project(tmp_path_factory.mktemp("wiring"), f"target: sandbox\ndeployment: {DEPLOYMENT}\n") as root:
        yield root


@pytest.fixture(scope="module")
def wired(project: Path) -> Context:
    ctx = make_ctx(project)
    result = Engine(ctx, phases()).run([0, 1, 2, 3, 4])
    for phase in result.phases:
        print(f"\nphase {phase.number} ({phase.name}): {phase.status} in {phase.seconds:.1f}s, {phase.mutations} mutations")
    assert result.ok, result.error
    return ctx


def test_the_probe_study_gets_a_result_with_14_findings(wired: Context):
    outputs = wired.state.outputs(4)
    bucket, _, key = outputs["test_result"].removeprefix("s3://").partition("/")
    document = json.loads(wired.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert document["status"] == "SUCCESS" and len(document["findings"]) == 14
    execution = wired.client("stepfunctions").describe_execution(executionArn=outputs["test_execution_arn"])
    assert execution["status"] == "SUCCEEDED"
    assert outputs["wired_endpoint"] == wired.state.outputs(3)["endpoint"]


def test_second_run_of_phases_0_to_4_makes_no_mutation(project: Path, wired: Context):
    again = Engine(make_ctx(project), phases()).run([0, 1, 2, 3, 4])
    assert again.ok, again.error
    assert again.mutations == 0
    print(f"\nsecond run of phases 0-4: {sum(p.seconds for p in again.phases):.1f}s")


def test_destroying_phase4_unwires_the_lambda(project: Path, wired: Context):
    ctx = make_ctx(project)
    assert Engine(ctx, phases()).destroy([4]).ok
    function = ctx.names.lambda_function("invoke_inference")
    variables = ctx.client("lambda").get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert ENDPOINT_VARIABLE not in variables and variables["MODEL_NAME"]
    assert Engine(make_ctx(project), phases()).destroy([3, 2, 1, 0]).ok
