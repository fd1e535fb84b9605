"""Phase 2: the serving image and the Triton workload.

The image is the stock Triton image plus the model repository as one layer, tagged by the base
image and the repository's content, so an unchanged image is never rebuilt or pushed and a changed
base image or model is (radstream.inference.image).
It goes to ECR on AWS and to the sandbox's own OCI registry on the sandbox. The Deployment runs it by
digest, with a PodDisruptionBudget and a CPU HorizontalPodAutoscaler, and the phase waits for the
rollout. The registry, not the state file, says which image is current."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.errors import ConfigError, RadstreamError
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context
    from radstream.targets.base import Registry

PHASE = 2
# Hashing the model layer takes a moment: a found image is remembered for the rest of the run.
_found_images: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def model_repository(ctx: Context) -> Path:
    from radstream.resources import model_repository as served

    return served(ctx.state_dir)


def registry(ctx: Context) -> Registry:
    """Where the image goes (ECR with a fresh authorization token, or the sandbox's registry)."""
    return ctx.target.image_registry(ctx.client, ctx.names.ecr_repository)


def image_tag(ctx: Context) -> str:
    """The serving image's tag for the current base image, model repository and device
    (radstream.inference.image.serving_tag); ConfigError while there is no model yet."""
    from radstream.inference.image import model_layer, serving_tag
    from radstream.kube.manifests import is_gpu

    return serving_tag(registry(ctx).base_image, model_layer(model_repository(ctx), is_gpu(ctx.config)))


def image_model(ctx: Context) -> dict[str, Any] | None:
    """The model the serving image carries (repository.served_version), None while there is none."""
    from radstream.inference.model import MODEL_NAME
    from radstream.inference.repository import served_version, versions

    model_dir = model_repository(ctx) / MODEL_NAME
    return served_version(model_dir) if versions(model_dir) else None


def describe_model(model: dict[str, Any]) -> str:
    trained = "" if model["model_trained"] else ", untrained"
    return f"{model['name']} version {model['version']} (sha256 {model['sha256'][:12]}, {len(model['labels'])} labels{trained})"


def model_change(served: dict[str, Any] | None, built: dict[str, Any] | None) -> str:
    """What the next image changes in what scores studies, for the plan."""
    if built is None:
        return "the default model, built in this phase"
    if served is None:
        return describe_model(built)
    if (served["version"], served["sha256"]) == (built["version"], built["sha256"]):
        return f"{describe_model(built)}, as served now"
    return f"{describe_model(built)}, replacing {describe_model(served)}"


def pushed_image(ctx: Context) -> str | None:
    """repository:tag@digest of the image for the current base image and model repository, if the
    registry has it."""
    if ctx in _found_images:
        return _found_images[ctx]
    from radstream.inference.oci import Credentials, RegistryClient, parse_reference

    try:
        tag = image_tag(ctx)
    except ConfigError:
        return None  # no model yet: apply builds it
    target = registry(ctx)
    ref = parse_reference(target.repository)
    client = RegistryClient(ref.registry, Credentials(*target.credentials) if target.credentials else None)
    try:
        digest = client.manifest_digest(ref.repository, tag)
    finally:
        client.close()
    if digest is None:
        return None
    _found_images[ctx] = str(ref.with_tag(tag).with_digest(digest))
    return _found_images[ctx]


class ServingImageStep(Step):
    name = "serving-image"
    description = "build the Triton image with the model repository and push it (skipped when present)"

    def check(self, ctx: Context) -> bool:
        return pushed_image(ctx) is not None

    def plan(self, ctx: Context) -> list[Change]:
        target = registry(ctx)
        served = ctx.state.outputs(PHASE).get("served_model")
        return [Change("create", "container image", target.repository,
                       f"{target.base_image} + {model_repository(ctx)} as /models: {model_change(served, image_model(ctx))}")]

    def apply(self, ctx: Context) -> None:
        from radstream.inference.image import build_and_push
        from radstream.inference.model import MODEL_NAME
        from radstream.inference.repository import build_repository, versions
        from radstream.kube.manifests import is_gpu

        repo = model_repository(ctx)
        if not versions(repo / MODEL_NAME):
            ctx.log(f"no model in {repo}: building the default one")
            build_repository(repo)
        target = registry(ctx)
        ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        result = build_and_push(repo, target.base_image, target.repository, credentials=target.credentials,
                                builder=ctx.config.triton.builder, gpu=is_gpu(ctx.config), work_dir=ctx.cache_dir,
                                log=ctx.log)
        if not result["skipped"]:
            ctx.counter.record("registry:push")

    def verify(self, ctx: Context) -> None:
        if pushed_image(ctx) is None:
            raise VerifyFailed(f"the registry does not list the pushed image in {registry(ctx).repository}")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        image = pushed_image(ctx)
        return {"image": image, "image_digest": image.rpartition("@")[2] if image else None}


class NamespaceStep(Step):
    name = "namespace"
    description = "the namespace Triton runs in"

    def _manifest(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.manifests import namespace, template_dir

        return namespace(ctx.config, template_dir(ctx.root))

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import is_applied, kube_api

        return is_applied(kube_api(ctx), self._manifest(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("create", "k8s namespace", ctx.config.triton.namespace)]

    def apply(self, ctx: Context) -> None:
        from radstream.kube.apply import apply, kube_api

        apply(kube_api(ctx), self._manifest(ctx))

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import cluster_running
        from radstream.kube.apply import delete, kube_api, wait_deleted

        if not cluster_running(ctx.client("eks"), ctx.config.cluster_name):
            return  # the namespace is gone, or goes, with the cluster
        api, name = kube_api(ctx), ctx.config.triton.namespace
        if delete(api, "Namespace", name):
            wait_deleted(ctx.wait, api, "Namespace", name)


class WorkloadsStep(Step):
    name = "workloads"
    description = "Triton Deployment, PodDisruptionBudget and HorizontalPodAutoscaler; wait for the rollout"

    def _manifests(self, ctx: Context, image: str) -> list[dict[str, Any]]:
        from radstream.kube.manifests import template_dir, workloads

        return workloads(ctx.config, template_dir(ctx.root), image)

    def _image(self, ctx: Context) -> str:
        image = pushed_image(ctx)
        if image is None:
            raise RadstreamError("the serving image is not in the registry", hint="run phase 2 from its first step")
        return image

    def _rolled_out(self, ctx: Context) -> bool:
        from radstream.kube.apply import get, kube_api, rollout_state
        from radstream.kube.manifests import DEPLOYMENT

        live = get(kube_api(ctx), "Deployment", DEPLOYMENT, ctx.config.triton.namespace)
        return live is not None and rollout_state(live)[0]

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import is_applied, kube_api

        image = pushed_image(ctx)
        return image is not None and all(is_applied(kube_api(ctx), m) for m in self._manifests(ctx, image)) \
            and self._rolled_out(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        from radstream.kube.apply import get, kube_api

        image = pushed_image(ctx) or f"{registry(ctx).repository}:<built in this phase>"
        changes = []
        for manifest in self._manifests(ctx, image):
            kind, meta = manifest["kind"], manifest["metadata"]
            exists = get(kube_api(ctx), kind, meta["name"], meta["namespace"]) is not None
            detail = f"image {image}" if kind == "Deployment" else ""
            changes.append(Change("update" if exists else "create", f"k8s {kind.lower()}",
                                  f"{meta['namespace']}/{meta['name']}", detail))
        return changes

    def apply(self, ctx: Context) -> None:
        from radstream.kube.apply import apply, kube_api, wait_rollout
        from radstream.kube.manifests import DEPLOYMENT

        api, image, namespace = kube_api(ctx), self._image(ctx), ctx.config.triton.namespace
        for manifest in self._manifests(ctx, image):
            apply(api, manifest)
        # A node's first pull of the stock Triton image takes minutes: the timeout is sized for it, and
        # what the pods are doing (Pulling image, ImagePullBackOff…) is shown meanwhile.
        wait_rollout(ctx.wait, api, namespace, DEPLOYMENT, timeout=ctx.config.triton.rollout_timeout_seconds,
                     log=ctx.log)

    def verify(self, ctx: Context) -> None:
        if not self._rolled_out(ctx):
            raise VerifyFailed("the Triton Deployment is not rolled out")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.manifests import DEPLOYMENT

        # What scores studies now the rollout is done: `status` shows it, the next plan compares with it.
        return {"namespace": ctx.config.triton.namespace, "deployment": DEPLOYMENT, "served_model": image_model(ctx)}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import cluster_running
        from radstream.kube.apply import delete, kube_api, list_objects, wait_deleted
        from radstream.kube.manifests import DEPLOYMENT, selector

        if not cluster_running(ctx.client("eks"), ctx.config.cluster_name):
            return  # the workloads are gone, or go, with the cluster
        api, namespace = kube_api(ctx), ctx.config.triton.namespace
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment"):
            delete(api, kind, DEPLOYMENT, namespace)
        wait_deleted(ctx.wait, api, "Deployment", DEPLOYMENT, namespace)
        ctx.wait("Triton pods gone", lambda: not list_objects(api, "Pod", namespace, labels=selector(ctx.config)),
                 timeout=300, interval=1.0)


class TritonPhase(Phase):
    number = PHASE
    name = "triton"
    summary = "build and push the Triton image, deploy it with PDB and HPA"

    def preflight(self, ctx: Context) -> str | None:
        """Read-only, checked before any phase of a run changes anything: a base image the nodes'
        disk cannot hold shows only once a node pulls it: "no space left on device", disk pressure."""
        from radstream.inference.footprint import disk_problem, read_footprint
        from radstream.inference.oci import parse_reference

        target = registry(ctx)
        same = parse_reference(target.base_image).registry == parse_reference(target.repository).registry
        found = read_footprint(target.base_image, target.credentials if same else None)
        return disk_problem(target.base_image, found, ctx.config.nodegroup.disk_gib)

    def steps(self, ctx: Context) -> list[Step]:
        return [ServingImageStep(), NamespaceStep(), WorkloadsStep()]
