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


def load_balancer_services(ctx: Context) -> list[str]:
    """"<ns>/<name> (<load balancer>)" of every LoadBalancer Service in the cluster."""
    from radstream.kube.apply import kube_api, list_objects

    found = []
    for svc in list_objects(kube_api(ctx), "Service"):
        if (svc.get("spec") or {}).get("type") == "LoadBalancer":
            ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or [{}]
            meta = svc["metadata"]
            found.append(f"{meta['namespace']}/{meta['name']} ({ingress[0].get('hostname') or 'no load balancer yet'})")
    return found


def sweep_load_balancers(ctx: Context, cluster: str) -> None:
    """Delete what the cloud controller made for a cluster that is gone: its load balancers, then
    their security groups (AWS holds those a while after the load balancer goes)."""
    from radstream.aws.elb import cluster_load_balancers, cluster_security_groups, delete_load_balancer, delete_security_group

    elb, elbv2, ec2 = ctx.client("elb"), ctx.client("elbv2"), ctx.client("ec2")
    for name in cluster_load_balancers(elb, elbv2, cluster):
        ctx.warn(f"load balancer {name} outlived cluster {cluster}; deleting it")
        delete_load_balancer(elb, elbv2, name)
    groups = cluster_security_groups(ec2, cluster)
    if groups:
        ctx.wait(f"security groups {', '.join(groups)} of cluster {cluster} deleted",
                 lambda: all([delete_security_group(ec2, g) for g in groups]), timeout=LOAD_BALANCER_TIMEOUT_S,
                 interval=10.0)


def smoke_input() -> Any:
    """A deterministic uint8 [1,1,224,224] image: a diagonal gradient."""
    import numpy as np

    ramp = np.add.outer(np.arange(SMOKE_INPUT_SIZE), np.arange(SMOKE_INPUT_SIZE)) % 256
    return ramp.astype(np.uint8).reshape(1, 1, SMOKE_INPUT_SIZE, SMOKE_INPUT_SIZE)


def _gone(service: dict[str, Any] | None) -> bool:
    """True once the Service is gone; raises when only finalizers other than the load balancer's
    hold it (the load balancer is released, and no controller of ours will let it go)."""
    from radstream.kube.manifests import LOAD_BALANCER_CLEANUP

    if service is None:
        return True
    finalizers = service["metadata"].get("finalizers") or []
    if finalizers and LOAD_BALANCER_CLEANUP not in finalizers:
        name = f"{service['metadata']['namespace']}/{service['metadata']['name']}"
        raise RadstreamError(f"Service {name} is held by finalizer(s) {', '.join(finalizers)}",
                             hint=f"remove them (kubectl -n {service['metadata']['namespace']} patch service "
                                  f"{service['metadata']['name']} --type=merge -p '{{\"metadata\":{{\"finalizers\":null}}}}') "
                                  "and run `radstream phase destroy 3` again")
    return False


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
        from radstream.aws.eks import cluster_running
        from radstream.kube.apply import delete, get, kube_api
        from radstream.kube.manifests import SERVICE

        if not cluster_running(ctx.client("eks"), ctx.config.cluster_name):
            return  # phase 0 sweeps what a gone cluster left behind
        api, namespace = kube_api(ctx), ctx.config.triton.namespace
        # The Service object stays until its load balancer is released, so waiting for it waits for both.
        if delete(api, "Service", SERVICE, namespace):
            ctx.wait(f"Service {namespace}/{SERVICE} and its load balancer gone",
                     lambda: _gone(get(api, "Service", SERVICE, namespace)), timeout=LOAD_BALANCER_TIMEOUT_S,
                     interval=1.0)


class ExposePhase(Phase):
    number = PHASE
    name = "expose"
    summary = "LoadBalancer Service, health, model ready and one real inference"

    def steps(self, ctx: Context) -> list[Step]:
        return [EndpointStep()]
