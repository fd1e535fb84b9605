"""Phases 1-3 end to end through a real sandbox daemon: boto3 against the emulated EKS, the official
kubernetes client against the API emulator, the sandbox's OCI registry and its real Triton.

A t3.micro nodegroup made beforehand shows the preflight problem; phase 1 swaps it for a t3.medium
and drains and deletes the old one; phase 2 pushes the image and rolls Triton out; phase 3 exposes
it and answers a real inference. A second run changes nothing and destroy leaves nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.kube.apply import get, kube_api, list_objects
from radstream.kube.manifests import NODEGROUP_LABEL, SERVICE
from radstream.phases.p1_nodegroup import NodegroupPhase
from radstream.phases.p2_triton import TritonPhase
from radstream.phases.p3_expose import ExposePhase
from radstream.state import State
from tests.integration.sandbox_fixtures import sandbox_project

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-clu"
CLUSTER = f"{DEPLOYMENT}-cluster"
LEGACY = "ng-legacy"


def phases() -> list[Any]:
    return [NodegroupPhase(), TritonPhase(), ExposePhase()]


def make_ctx(project: Path) -> Context:
    """A fresh context per run, as each CLI invocation makes one."""
    loaded = config.load(project / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, DEPLOYMENT, "sandbox"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # The t3.micro nodegroup and the guarded one are not this deployment's: the config lists them to replace.
    config_yaml = (f"target: sandbox\ndeployment: {DEPLOYMENT}\nnodegroup:\n  drain_timeout_seconds: 60\n"
                   f"  replace: [{LEGACY}, ng-guarded]\n"
                   "triton:\n  rollout_timeout_seconds: 120\n")
    with sandbox_project(tmp_path_factory.mktemp("cluster-phases"), config_yaml) as root:
        yield root


@pytest.fixture(scope="module")
def legacy_cluster(project: Path) -> Context:
    """What the plan started from: an EKS cluster whose only nodegroup is one t3.micro, full."""
    ctx = make_ctx(project)
    eks = ctx.client("eks")
    # Real subnets: the cloud controller puts the Service's load balancer in the cluster's.
    subnets = [s["SubnetId"] for s in ctx.client("ec2").describe_subnets(
        Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]][:2]
    eks.create_cluster(name=CLUSTER, roleArn="arn:aws:iam::123456789012:role/eks",
                       resourcesVpcConfig={"subnetIds": subnets})
    eks.create_nodegroup(clusterName=CLUSTER, nodegroupName=LEGACY, nodeRole="arn:aws:iam::123456789012:role/n",
                         subnets=subnets[:1], instanceTypes=["t3.micro"],
                         scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1})
    api = kube_api(ctx)

    def coredns_on_legacy() -> bool:
        pods = list_objects(api, "Pod", "kube-system", labels={"k8s-app": "kube-dns"})
        nodes = {n["metadata"]["name"] for n in list_objects(api, "Node", labels={NODEGROUP_LABEL: LEGACY})}
        return len(pods) == 2 and all(p["spec"].get("nodeName") in nodes for p in pods)

    ctx.wait("coredns on the t3.micro", coredns_on_legacy, timeout=60, interval=0.5)
    return ctx


@pytest.fixture(scope="module")
def first_run(project: Path, legacy_cluster: Context) -> dict[str, Any]:
    ctx = make_ctx(project)
    plan = Engine(ctx, phases()).plan([1])
    result = Engine(ctx, phases()).run([1, 2, 3])
    for phase in result.phases:
        print(f"\nphase {phase.number} ({phase.name}): {phase.status} in {phase.seconds:.1f}s, "
              f"{phase.mutations} mutations; steps {[(s['name'], s['seconds']) for s in phase.steps]}")
    assert result.ok, result.error
    return {"plan": plan, "result": result, "ctx": ctx}


def test_plan_explains_why_the_t3_micro_cannot_run_triton(first_run: dict[str, Any]):
    changes = first_run["plan"].phases[0].changes
    replace = next(c for c in changes if c["action"] == "replace")
    assert replace["name"] == LEGACY
    assert "t3.micro takes 4 pods per node" in replace["detail"] and "only 4 fit" in replace["detail"]
    create = next(c for c in changes if c["action"] == "create")
    assert create["name"] == "cpu-ng" and "t3.medium" in create["detail"] and "fits" in create["detail"]


def test_phase1_swaps_the_nodegroup_and_the_old_nodes_are_drained_and_gone(first_run: dict[str, Any]):
    ctx = first_run["ctx"]
    assert ctx.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == ["cpu-ng"]
    api = kube_api(ctx)
    ctx.wait("legacy nodes gone", lambda: not list_objects(api, "Node", labels={NODEGROUP_LABEL: LEGACY}),
             timeout=30, interval=0.5)
    new_nodes = {n["metadata"]["name"] for n in list_objects(api, "Node", labels={NODEGROUP_LABEL: "cpu-ng"})}
    dns = list_objects(api, "Pod", "kube-system", labels={"k8s-app": "kube-dns"})
    assert {p["spec"]["nodeName"] for p in dns} <= new_nodes
    outputs = ctx.state.outputs(1)
    assert outputs["instance_type"] == "t3.medium" and outputs["pods_per_node"] == 17
    assert outputs["replaced_nodegroups"] == [LEGACY] and outputs["evicted_pods"] >= 2


def test_phase2_pushes_the_image_and_rolls_triton_out_by_digest(first_run: dict[str, Any]):
    ctx = first_run["ctx"]
    outputs = ctx.state.outputs(2)
    assert outputs["image"].startswith(ctx.target.endpoints["registry"] + f"/{DEPLOYMENT}-triton:serving-")
    assert outputs["image"].endswith("@" + outputs["image_digest"])
    deployment = get(kube_api(ctx), "Deployment", "triton", "radstream")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == outputs["image"]
    assert deployment["status"]["readyReplicas"] == deployment["spec"]["replicas"] == 1
    assert get(kube_api(ctx), "HorizontalPodAutoscaler", "triton", "radstream") is not None
    assert get(kube_api(ctx), "PodDisruptionBudget", "triton", "radstream")["spec"]["maxUnavailable"] == 1


def test_phase3_endpoint_answers_a_real_inference(first_run: dict[str, Any]):
    import numpy as np

    from radstream.inference.client import TritonClient
    from radstream.phases.p3_expose import smoke_input

    outputs = first_run["ctx"].state.outputs(3)
    assert outputs["endpoint"].startswith("https://127.0.0.1:")
    assert outputs["smoke_test"]["probabilities"] == 14
    ca = first_run["ctx"].state_dir / "tls" / "ca.crt"
    with TritonClient(outputs["endpoint"], ca_file=str(ca)) as client:
        probabilities = client.infer(smoke_input())
    assert probabilities.shape == (1, 14) and np.all((probabilities >= 0) & (probabilities <= 1))
    assert "grpc_endpoint" not in outputs  # gRPC would cross the load balancer in the clear: not exposed


def test_second_run_makes_no_mutation(project: Path, first_run: dict[str, Any]):
    again = Engine(make_ctx(project), phases()).run([1, 2, 3])
    for phase in again.phases:
        print(f"\nsecond run, phase {phase.number}: {phase.status} in {phase.seconds:.2f}s")
    assert again.ok, again.error
    assert again.mutations == 0
    assert [p.status for p in again.phases] == ["skipped", "skipped", "skipped"]


def test_a_new_base_image_plans_a_new_tag_and_a_rollout(project: Path, first_run: dict[str, Any]):
    """The image's tag covers its base image: naming another one is a build and a rollout, not "up to date"."""
    from radstream.inference.oci import RegistryClient
    from radstream.phases.p2_triton import image_tag
    from radstream.sandbox.base_image import SANDBOX_BASE_REPOSITORY, push_synthetic_base

    ctx = first_run["ctx"]
    host = ctx.target.endpoints["registry"]
    client = RegistryClient(host)
    try:
        push_synthetic_base(client, SANDBOX_BASE_REPOSITORY, "2", release="2")
    finally:
        client.close()
    config_file = project / "radstream.yaml"
    original = config_file.read_text()
    config_file.write_text(original.replace("triton:\n", f"triton:\n  base_image: {host}/{SANDBOX_BASE_REPOSITORY}:2\n"))
    try:
        changed = make_ctx(project)
        plan = Engine(changed, phases()).run([2], dry_run=True)
        new_tag = image_tag(changed)
    finally:
        config_file.write_text(original)
    assert plan.ok, plan.error
    old_tag = ctx.state.outputs(2)["image"].partition("@")[0].rpartition(":")[2]  # host:port/repo:tag@sha256:…
    assert new_tag != old_tag and new_tag.startswith("serving-")
    changes = plan.phases[0].changes
    assert [(c["action"], c["resource"]) for c in changes if c["step"] == "serving-image"] == [("create", "container image")]
    [rollout] = [c for c in changes if c["resource"] == "k8s deployment"]
    assert rollout["action"] == "update" and "<built in this phase>" in rollout["detail"]
    assert Engine(make_ctx(project), phases()).run([2], dry_run=True).phases[0].changes == []  # the original: up to date


def test_an_image_the_registry_lacks_fails_the_rollout_by_name_and_the_model_before_keeps_serving(
        project: Path, first_run: dict[str, Any]):
    """`kubectl set image` to a tag nobody pushed (or one a lifecycle policy expired): the pod backs
    off, the rollout wait names the image, the serving model stays, and phase 2 puts its image back."""
    from radstream.errors import WaitTimeout
    from radstream.inference.client import TritonClient
    from radstream.kube.apply import path, request, wait_rollout

    ctx = make_ctx(project)
    api, image = kube_api(ctx), ctx.state.outputs(2)["image"]
    missing = image.partition("@")[0].rpartition(":")[0] + ":serving-000000000000"
    request(api, "PATCH", path("Deployment", "triton", "radstream"), content_type="application/strategic-merge-patch+json",
            body={"spec": {"template": {"spec": {"containers": [{"name": "triton", "image": missing}]}}}})
    with pytest.raises(WaitTimeout) as failed:
        wait_rollout(ctx.wait, api, "radstream", "triton", timeout=10)
    assert "ImagePullBackOff" in str(failed.value) and f"{missing}: " in str(failed.value)
    assert "not found" in str(failed.value)

    endpoint, ca = ctx.state.outputs(3)["endpoint"], ctx.state_dir / "tls" / "ca.crt"
    with TritonClient(endpoint, ca_file=str(ca)) as client:
        assert client.metadata()["versions"] == ["1"]
    repaired = Engine(make_ctx(project), phases()).run([2])
    assert repaired.ok, repaired.error
    deployment = get(api, "Deployment", "triton", "radstream")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert {p["spec"]["containers"][0]["image"] for p in list_objects(api, "Pod", "radstream",
                                                                       labels={"app.kubernetes.io/name": "triton"})} == {image}


def test_destroy_in_reverse_leaves_nothing(project: Path, first_run: dict[str, Any]):
    ctx = make_ctx(project)
    result = Engine(ctx, phases()).destroy([1, 2, 3])
    for phase in result.phases:
        print(f"\ndestroy phase {phase.number}: {phase.status} in {phase.seconds:.1f}s")
    assert result.ok, result.error
    api = kube_api(ctx)
    assert get(api, "Service", SERVICE, "radstream") is None
    assert get(api, "Namespace", "radstream") is None
    assert ctx.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == []
    ctx.wait("nodes gone", lambda: not list_objects(api, "Node"), timeout=30, interval=0.5)
    # Destroying again finds nothing to do and does not fail.
    assert Engine(make_ctx(project), phases()).destroy([1, 2, 3]).ok


def test_a_blocking_budget_stops_phase1_at_its_timeout_and_a_rerun_completes(project: Path, first_run: dict[str, Any]):
    from radstream.kube.apply import apply, path, request

    ctx = make_ctx(project)
    ctx.client("eks").create_nodegroup(
        clusterName=CLUSTER, nodegroupName="ng-guarded", nodeRole="arn:aws:iam::123456789012:role/n",
        subnets=ctx.client("eks").describe_cluster(name=CLUSTER)["cluster"]["resourcesVpcConfig"]["subnetIds"][:1],
        instanceTypes=["t3.large"], scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1})
    api, labels = kube_api(ctx), {"app": "ledger"}
    apply(api, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "apps"}})
    apply(api, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ledger", "namespace": "apps"},
                "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "main", "image": "registry.example/ledger:1"}]}}}})
    apply(api, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "ledger", "namespace": "apps"},
                "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}})
    ctx.wait("ledger running", lambda: any(p["status"].get("phase") == "Running"
                                           for p in list_objects(api, "Pod", "apps", labels=labels)),
             timeout=30, interval=0.5)

    short = config.load(project / "radstream.yaml", environ={"RADSTREAM_NODEGROUP__DRAIN_TIMEOUT_SECONDS": "10"})
    blocked = Engine(Context(short, State.load(short.state_dir, DEPLOYMENT, "sandbox")), phases()).run([1])
    assert not blocked.ok
    assert "PodDisruptionBudget ledger" in blocked.error and "apps/ledger-" in blocked.error
    assert "ng-guarded" in ctx.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"]  # nothing deleted

    request(api, "PATCH", path("PodDisruptionBudget", "ledger", "apps"), body={"spec": {"minAvailable": 0}},
            content_type="application/merge-patch+json")
    rerun = Engine(make_ctx(project), phases()).run([1])
    assert rerun.ok, rerun.error
    assert ctx.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == ["cpu-ng"]
    assert Engine(make_ctx(project), phases()).destroy([1]).ok
