"""Phase 3: expose Triton through a LoadBalancer Service (80 -> 8000 HTTP, 8001 gRPC), wait for its
external hostname, then prove it end to end: server ready, model ready and one real inference.
The endpoint recorded here is what phase 4 wires into the pipeline."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = 3
LOAD_BALANCER_TIMEOUT_S = 900  # an AWS load balancer and its DNS name take a few minutes
SMOKE_INPUT_SIZE = 224


def _service_manifest(ctx: Context) -> dict[str, Any]:
    from radstream.kube.manifests import service, template_dir

    return service(ctx.config, template_dir(ctx.root))


def live_endpoints(ctx: Context) -> tuple[str, str] | None:
    """(HTTP URL, gRPC address) of the Service's load balancer, read from the cluster."""
    from radstream.kube.apply import get, kube_api
    from radstream.kube.manifests import SERVICE, endpoints

    live = get(kube_api(ctx), "Service", SERVICE, ctx.config.triton.namespace)
    return endpoints(live) if live else None


def smoke_input() -> Any:
    """A deterministic uint8 [1,1,224,224] image: a diagonal gradient."""
    import numpy as np

    ramp = np.add.outer(np.arange(SMOKE_INPUT_SIZE), np.arange(SMOKE_INPUT_SIZE)) % 256
    return ramp.astype(np.uint8).reshape(1, 1, SMOKE_INPUT_SIZE, SMOKE_INPUT_SIZE)


class EndpointStep(Step):
    name = "endpoint"
    description = "LoadBalancer Service in front of Triton, its hostname, and one real inference through it"

    def _client(self, ctx: Context, retries: int = 0):
        from radstream.inference.client import TritonClient

        found = live_endpoints(ctx)
        if found is None:
            raise RadstreamError("the Triton Service has no load balancer yet", hint="run phase 3 again")
        return TritonClient(found[0], model=ctx.config.triton.model_name, timeout=10.0, retries=retries)

    def _serving(self, ctx: Context) -> bool:
        from radstream.inference.client import TritonError

        with self._client(ctx) as client:
            try:
                return client.is_ready() and client.is_model_ready()
            except TritonError:
                return False  # DNS of a new load balancer, or the pods behind it, not there yet

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import is_applied, kube_api

        return is_applied(kube_api(ctx), _service_manifest(ctx)) and live_endpoints(ctx) is not None \
            and self._serving(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        from radstream.kube.manifests import SERVICE

        return [Change("create", "k8s service", f"{ctx.config.triton.namespace}/{SERVICE}",
                       "type LoadBalancer: 80 -> 8000 (HTTP), 8001 (gRPC); then one inference through it")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.apply import apply, kube_api
        from radstream.kube.manifests import SERVICE

        apply(kube_api(ctx), _service_manifest(ctx))
        http, _ = ctx.wait(f"load balancer of {ctx.config.triton.namespace}/{SERVICE}", lambda: live_endpoints(ctx),
                           timeout=LOAD_BALANCER_TIMEOUT_S, interval=2.0)
        ctx.wait(f"Triton ready with model {ctx.config.triton.model_name} at {http}", lambda: self._serving(ctx),
                 timeout=LOAD_BALANCER_TIMEOUT_S, interval=5.0)
        return {"smoke_test": self._infer_once(ctx)}

    def _infer_once(self, ctx: Context) -> dict[str, Any]:
        import numpy as np

        with self._client(ctx, retries=2) as client:
            expected = client.metadata()["outputs"][0]["shape"][-1]
            started = time.monotonic()
            probabilities = client.infer(smoke_input())
            seconds = time.monotonic() - started
        if probabilities.shape != (1, expected) or not np.all((probabilities >= 0) & (probabilities <= 1)):
            raise VerifyFailed(f"the model answered {list(probabilities.shape)} values, expected {expected} probabilities")
        ctx.log(f"one inference through {client.url}: {expected} probabilities in {seconds * 1000:.0f} ms")
        return {"probabilities": int(expected), "milliseconds": round(seconds * 1000, 1)}

    def verify(self, ctx: Context) -> None:
        if live_endpoints(ctx) is None or not self._serving(ctx):
            raise VerifyFailed("the load balancer does not reach a ready Triton")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        found = live_endpoints(ctx)
        return {"endpoint": found[0], "grpc_endpoint": found[1]} if found else {}

    def destroy(self, ctx: Context) -> None:
        from radstream.kube.apply import delete, kube_api, wait_deleted
        from radstream.kube.manifests import SERVICE

        api, namespace = kube_api(ctx), ctx.config.triton.namespace
        # The Service object stays until its load balancer is released, so waiting for it waits for both.
        if delete(api, "Service", SERVICE, namespace):
            wait_deleted(ctx.wait, api, "Service", SERVICE, namespace, timeout=LOAD_BALANCER_TIMEOUT_S)


class ExposePhase(Phase):
    number = PHASE
    name = "expose"
    summary = "LoadBalancer Service, health, model ready and one real inference"

    def steps(self, ctx: Context) -> list[Step]:
        return [EndpointStep()]
