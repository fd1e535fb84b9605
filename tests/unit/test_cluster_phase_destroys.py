"""Destroying phases 1-3 when the cluster was never made (a partial `up`) is a no-op on the aws
target, where a Kubernetes client needs the cluster's endpoint from DescribeCluster: against
in-process moto, which, like EKS, answers ResourceNotFoundException for it."""

from __future__ import annotations

from pathlib import Path

import pytest
from moto import mock_aws

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases.p1_nodegroup import NodegroupPhase
from radstream.phases.p2_triton import TritonPhase
from radstream.phases.p3_expose import ExposePhase
from radstream.state import State

DEPLOYMENT = "rs-nocluster"


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    # A GPU nodegroup, so phase 1 has its Kubernetes step (the device plugin DaemonSet) too.
    (tmp_path / "radstream.yaml").write_text(
        f"target: aws\ndeployment: {DEPLOYMENT}\nnodegroup:\n  instance_type: g4dn.xlarge\n")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    with mock_aws():
        yield Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "aws"))


def test_destroying_the_cluster_phases_without_a_cluster_changes_nothing_and_succeeds(ctx: Context):
    engine = Engine(ctx, [NodegroupPhase(), TritonPhase(), ExposePhase()])
    assert "nvidia-device-plugin" in [s.name for s in NodegroupPhase().steps(ctx)]
    result = engine.destroy([1, 2, 3], teardown=True)
    assert [(p.number, p.status, p.error, p.mutations) for p in result.phases] == [
        (3, "destroyed", None, 0), (2, "destroyed", None, 0), (1, "destroyed", None, 0)]
