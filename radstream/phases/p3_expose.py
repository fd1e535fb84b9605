"""Phase 3: expose Triton through an internal LoadBalancer Service (HTTPS 443 -> 8000), wait for its
hostname, then prove it end to end over TLS: server ready, model ready and one real inference.

TLS: the deployment's own CA (kept in <state dir>/tls/, radstream.certificates) signs Triton's
server certificate, which is imported into ACM; the load balancer terminates TLS with it and the
pipeline verifies it against the CA. The endpoint recorded here, and the CA's certificate (public),
are what phase 4 wires into the pipeline."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.context import Context

PHASE = 3
TLS_DIR = "tls"  # under the state dir: the deployment's CA and Triton's certificate, keys mode 0600
LOAD_BALANCER_TIMEOUT_S = 900  # an AWS load balancer and its DNS name take a few minutes
SMOKE_INPUT_SIZE = 224


def tls_files(ctx: Context):
    """The deployment's CA and Triton's current server certificate (made once, renewed near expiry),
    for any Classic ELB name in the region (internal-<name>-<id>.<region>.elb.amazonaws.com) and
    whatever else the target's clients connect by."""
    from radstream.certificates import ensure

    dns, ips = ctx.target.tls_extra_names
    suffix = "amazonaws.com.cn" if ctx.names.partition == "aws-cn" else "amazonaws.com"
    return ensure(ctx.state_dir / TLS_DIR, f"radstream-{ctx.config.deployment}-ca",
                  f"radstream-{ctx.config.deployment}-triton",
                  dns_names=(f"*.{ctx.config.region}.elb.{suffix}", *dns), ips=ips)


def _certificate_arn(ctx: Context) -> str | None:
    return ctx.outputs(PHASE).get("certificate_arn")


def _service_manifest(ctx: Context) -> dict[str, Any]:
    from radstream.documents import certificate_arn_before_import
    from radstream.kube.manifests import service, template_dir

    return service(ctx.config, template_dir(ctx.root), _certificate_arn(ctx) or certificate_arn_before_import(ctx.names))


def _live_service(ctx: Context) -> dict[str, Any] | None:
    from radstream.kube.apply import get, kube_api
    from radstream.kube.manifests import SERVICE

    return get(kube_api(ctx), "Service", SERVICE, ctx.config.triton.namespace)


def live_endpoint(ctx: Context) -> str | None:
    """The URL of the Service's load balancer, read from the cluster."""
    from radstream.kube.manifests import endpoint

    live = _live_service(ctx)
    return endpoint(live) if live else None


def _to_replace(ctx: Context) -> list[str]:
    """The creation-time annotations the live Service has wrong: it must be made anew for them."""
    from radstream.kube.manifests import creation_annotations_differ

    live = _live_service(ctx)
    return creation_annotations_differ(live, _service_manifest(ctx)) if live else []


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


class CertificateStep(Step):
    name = "tls-certificate"
    description = "the deployment's CA and Triton's server certificate, imported into ACM for the load balancer"

    def _wanted(self, ctx: Context) -> bytes:
        return tls_files(ctx).server_cert.read_bytes()

    def check(self, ctx: Context) -> bool:
        from radstream.aws.acm import imported_body

        arn = _certificate_arn(ctx)
        if arn is None:
            return False  # nothing imported yet: make no local files either (a plan changes nothing)
        body = imported_body(ctx.client("acm"), arn)
        return body is not None and body.strip() == self._wanted(ctx).decode().strip()

    def plan(self, ctx: Context) -> list[Change]:
        where = ctx.state_dir / TLS_DIR
        return [Change("create" if not _certificate_arn(ctx) else "update", "acm certificate",
                       f"radstream-{ctx.config.deployment}-triton",
                       f"server certificate signed by the deployment's CA ({where}), imported for the TLS listener")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.acm import ensure_certificate

        files = tls_files(ctx)
        arn = ensure_certificate(ctx.client("acm"), ctx.config.deployment, ctx.names.tags(PHASE),
                                 files.server_cert.read_bytes(), files.server_key.read_bytes(),
                                 files.ca_cert.read_bytes(), _certificate_arn(ctx))
        ctx.record("acm-certificate", arn, arn)
        return {"certificate_arn": arn}

    def verify(self, ctx: Context) -> None:
        if not self.check(ctx):
            raise VerifyFailed("ACM does not hold the deployment's current Triton certificate")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        # The CA's certificate only (public): what the pipeline verifies Triton with.
        return {"ca_certificate": tls_files(ctx).ca_cert.read_text()}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.acm import delete_certificate, deployment_certificates

        acm = ctx.client("acm")
        for arn in {*deployment_certificates(acm, ctx.config.deployment), *filter(None, [_certificate_arn(ctx)])}:
            delete_certificate(acm, arn)


class EndpointStep(Step):
    name = "endpoint"
    description = "internal LoadBalancer Service in front of Triton (TLS), its hostname, and one real inference through it"

    def _client(self, ctx: Context, retries: int = 0):
        from radstream.inference.client import TritonClient

        found = live_endpoint(ctx)
        if found is None:
            raise RadstreamError("the Triton Service has no load balancer yet", hint="run phase 3 again")
        return TritonClient(found, model=ctx.config.triton.model_name, timeout=10.0, retries=retries,
                            ca_file=str(tls_files(ctx).ca_cert))

    def _serving(self, ctx: Context) -> bool:
        from radstream.inference.client import TritonError

        with self._client(ctx) as client:
            try:
                return client.is_ready() and client.is_model_ready()
            except TritonError:
                return False  # DNS of a new load balancer, or the pods behind it, not there yet

    def check(self, ctx: Context) -> bool:
        from radstream.kube.apply import is_applied, kube_api

        return is_applied(kube_api(ctx), _service_manifest(ctx)) and live_endpoint(ctx) is not None \
            and self._serving(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        from radstream.kube.manifests import SERVICE

        manifest = _service_manifest(ctx)
        annotations = manifest["metadata"]["annotations"]
        shown = ", ".join(f"{k.rpartition('/')[2]}={annotations[k]}" for k in sorted(annotations)
                          if not k.endswith("additional-resource-tags"))
        detail = (f"type LoadBalancer: 443 (HTTPS) -> 8000; {shown}; source ranges "
                  f"{', '.join(manifest['spec']['loadBalancerSourceRanges'])}; then one inference through it")
        stale = _to_replace(ctx)
        if stale:
            return [Change("replace", "k8s service", f"{ctx.config.triton.namespace}/{SERVICE}",
                           f"{', '.join(stale)} differ and are read only when the load balancer is made: "
                           f"delete it, wait for its load balancer to go, create it ({detail})")]
        return [Change("create", "k8s service", f"{ctx.config.triton.namespace}/{SERVICE}", detail)]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.kube.apply import apply, kube_api
        from radstream.kube.manifests import SERVICE

        stale = _to_replace(ctx)
        if stale:
            ctx.warn(f"Service {ctx.config.triton.namespace}/{SERVICE} has other {', '.join(stale)}, which its "
                     "load balancer keeps from its creation: replacing it")
            self._delete(ctx)
        apply(kube_api(ctx), _service_manifest(ctx))
        http = ctx.wait(f"load balancer of {ctx.config.triton.namespace}/{SERVICE}", lambda: live_endpoint(ctx),
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
        if live_endpoint(ctx) is None or not self._serving(ctx):
            raise VerifyFailed("the load balancer does not reach a ready Triton")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        found = live_endpoint(ctx)
        return {"endpoint": found} if found else {}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.eks import cluster_running

        if not cluster_running(ctx.client("eks"), ctx.config.cluster_name):
            return  # phase 0 sweeps what a gone cluster left behind
        self._delete(ctx)

    def _delete(self, ctx: Context) -> None:
        from radstream.kube.apply import delete, get, kube_api
        from radstream.kube.manifests import SERVICE

        api, namespace = kube_api(ctx), ctx.config.triton.namespace
        # The Service object stays until its load balancer is released, so waiting for it waits for both.
        if delete(api, "Service", SERVICE, namespace):
            ctx.wait(f"Service {namespace}/{SERVICE} and its load balancer gone",
                     lambda: _gone(get(api, "Service", SERVICE, namespace)), timeout=LOAD_BALANCER_TIMEOUT_S,
                     interval=1.0)


def _door(ctx: Context) -> Any:
    """The public door as it should be (radstream.aws.public_door.Door); None until phase 0's public
    subnets and the Service's node port exist."""
    from radstream.aws.eks import describe_cluster, describe_nodegroup
    from radstream.aws.network import vpc_of
    from radstream.aws.public_door import Door

    subnets = ctx.outputs(0).get("public_subnets")
    live = _live_service(ctx)
    node_port = ((live or {}).get("spec", {}).get("ports") or [{}])[0].get("nodePort")
    if not subnets or not node_port:
        return None
    ec2, eks = ctx.client("ec2"), ctx.client("eks")
    vpc = vpc_of(ec2, subnets)
    nodegroup = describe_nodegroup(eks, ctx.config.cluster_name, ctx.config.nodegroup.name) or {}
    groups = tuple(g["name"] for g in (nodegroup.get("resources") or {}).get("autoScalingGroups", []))
    cluster = describe_cluster(eks, ctx.config.cluster_name) or {}
    certificate = ctx.config.expose.certificate_arn or _certificate_arn(ctx)
    if not certificate:
        raise RadstreamError("the public door has no certificate yet", hint="run `radstream up` (phase 3 imports one)")
    return Door(ctx.names.deployment, vpc["VpcId"], vpc["CidrBlock"], tuple(subnets),
                tuple(ctx.config.expose.allowed_cidrs), certificate, int(node_port), groups,
                (cluster.get("resourcesVpcConfig") or {}).get("clusterSecurityGroupId"))


class PublicDoorStep(Step):
    """expose.public: the internet-facing load balancer with its web ACL; off, nothing of it is left."""

    name = "public-door"
    description = "internet-facing HTTPS load balancer with an AWS WAF web ACL in front of Triton's HTTP API"

    def _acl_name(self, ctx: Context) -> str:
        return f"{ctx.names.deployment}-door"

    def _drift(self, ctx: Context) -> list[tuple[str, str, list[str]]]:
        from radstream.aws.public_door import door_drift, load_balancer
        from radstream.aws.waf import associated_web_acl, web_acl_arn, web_acl_drift
        from radstream.documents import web_acl

        elbv2, wafv2 = ctx.client("elbv2"), ctx.client("wafv2")
        if not ctx.config.expose.public:
            lb, acl = load_balancer(elbv2, ctx.names.deployment), web_acl_arn(wafv2, self._acl_name(ctx))
            return [(kind, name, ["remove"]) for kind, name, there in (
                ("load balancer", f"{ctx.names.deployment}-door", lb), ("web acl", self._acl_name(ctx), acl)) if there]
        door = _door(ctx)
        if door is None:
            return [("load balancer", f"{ctx.names.deployment}-door",
                     ["missing", "internet-facing, HTTPS 443 in the public subnets, to Triton's node port"]),
                    ("web acl", self._acl_name(ctx), ["missing", "AWS's common, known-bad-inputs and SQL injection "
                                                      "rule groups, a size cap and a rate limit"])]
        found = door_drift(ctx.client("ec2"), elbv2, ctx.client("autoscaling"), door)
        found.append(("web acl", self._acl_name(ctx), web_acl_drift(wafv2, self._acl_name(ctx), web_acl(ctx.names, ctx.config))))
        lb = load_balancer(elbv2, ctx.names.deployment)
        acl = web_acl_arn(wafv2, self._acl_name(ctx))
        associated = lb is not None and acl is not None and associated_web_acl(wafv2, lb["LoadBalancerArn"]) == acl
        found.append(("web acl association", f"{self._acl_name(ctx)} -> load balancer", [] if associated else ["missing"]))
        return found

    def check(self, ctx: Context) -> bool:
        return not any(drift for _, _, drift in self._drift(ctx)) and (not ctx.config.expose.public or self._serving(ctx))

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("delete" if drift == ["remove"] else "create" if "missing" in drift else "update", kind, name,
                       ", ".join(d for d in drift if d not in ("missing", "remove")))
                for kind, name, drift in self._drift(ctx) if drift]

    def apply(self, ctx: Context) -> dict[str, Any] | None:
        from radstream.aws.public_door import ensure_door
        from radstream.aws.waf import associate, ensure_web_acl
        from radstream.documents import web_acl

        if not ctx.config.expose.public:
            self.destroy(ctx)
            return None
        wafv2, tags = ctx.client("wafv2"), ctx.names.tags(PHASE)
        # The web ACL is on the load balancer before its listener opens the door.
        wanted = _door(ctx)
        if wanted is None:
            raise RadstreamError("the public door needs its public subnets (phase 0) and Triton's Service (the "
                                 "endpoint step)", hint="run `radstream up`")
        acl = ensure_web_acl(wafv2, self._acl_name(ctx), web_acl(ctx.names, ctx.config), tags)
        door = ensure_door(ctx.client("ec2"), ctx.client("elbv2"), ctx.client("autoscaling"), wanted, tags,
                           before_listener=lambda lb_arn: associate(wafv2, acl, lb_arn, ctx.wait))
        ctx.record("load-balancer", door["arn"], door["arn"])
        ctx.record("web-acl", acl, acl)
        ctx.wait(f"public door {door['dns_name']} serving Triton", lambda: self._serving(ctx),
                 timeout=LOAD_BALANCER_TIMEOUT_S, interval=1.0, max_interval=15.0)
        return None

    def _url(self, ctx: Context) -> str | None:
        from radstream.aws.public_door import load_balancer

        lb = load_balancer(ctx.client("elbv2"), ctx.names.deployment)
        if lb is None or lb.get("State", {}).get("Code", "active") != "active":
            return None
        if ctx.config.expose.hostname:
            return f"https://{ctx.config.expose.hostname}"
        return ctx.target.load_balancer_url(lb["DNSName"])

    def _serving(self, ctx: Context) -> bool:
        from radstream.inference.client import TritonClient, TritonError

        url = self._url(ctx)
        if url is None:
            return False
        ca = None if ctx.config.expose.certificate_arn else str(tls_files(ctx).ca_cert)
        with TritonClient(url, model=ctx.config.triton.model_name, timeout=10.0, retries=0, ca_file=ca) as client:
            try:
                return client.is_ready() and client.is_model_ready()
            except TritonError:
                return False  # a new load balancer's DNS name, or its targets' health checks, not there yet

    def verify(self, ctx: Context) -> None:
        if ctx.config.expose.public and not self._serving(ctx):
            raise VerifyFailed("the public door does not reach a ready Triton")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.public_door import load_balancer
        from radstream.aws.waf import web_acl_arn

        if not ctx.config.expose.public:
            return {}
        lb = load_balancer(ctx.client("elbv2"), ctx.names.deployment)
        return {"public_endpoint": self._url(ctx), "public_load_balancer_arn": lb["LoadBalancerArn"] if lb else None,
                "web_acl_arn": web_acl_arn(ctx.client("wafv2"), self._acl_name(ctx))}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.public_door import delete_door
        from radstream.aws.waf import delete_web_acl

        delete_web_acl(ctx.client("wafv2"), self._acl_name(ctx), ctx.wait)
        delete_door(ctx.client("ec2"), ctx.client("elbv2"), ctx.client("autoscaling"), ctx.names.deployment, ctx.wait)


class GuardDutyStep(Step):
    """security.guardduty: the region's GuardDuty detector, made if there is none; only one this
    deployment made is ever deleted (off again, or destroy)."""

    name = "guardduty"
    description = "the account's GuardDuty detector in the region (security test reports its findings)"

    def check(self, ctx: Context) -> bool:
        from radstream.aws.guardduty import deployment_detector, detector_id

        guardduty = ctx.client("guardduty")
        if ctx.config.security.guardduty:
            return detector_id(guardduty) is not None
        return deployment_detector(guardduty, ctx.names.deployment) is None

    def plan(self, ctx: Context) -> list[Change]:
        if ctx.config.security.guardduty:
            return [Change("create", "guardduty detector", ctx.config.region,
                           "enabled; billed by the events it analyses (a 30-day free trial)")]
        return [Change("delete", "guardduty detector", ctx.config.region, "security.guardduty is off")]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.guardduty import ensure_detector

        if not ctx.config.security.guardduty:
            self.destroy(ctx)
            return
        found, created = ensure_detector(ctx.client("guardduty"), ctx.names.tags(PHASE))
        if created:
            ctx.record("guardduty-detector", found, found)

    def outputs(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.guardduty import detector_id

        found = detector_id(ctx.client("guardduty")) if ctx.config.security.guardduty else None
        return {"guardduty_detector_id": found} if found else {}

    def destroy(self, ctx: Context) -> None:
        from radstream.aws.guardduty import delete_detector

        delete_detector(ctx.client("guardduty"), ctx.names.deployment)


class ExposePhase(Phase):
    number = PHASE
    name = "expose"
    summary = ("TLS certificate in ACM, internal LoadBalancer Service, health, model ready and one real inference over "
               "HTTPS; with expose.public the public door (ALB and WAF web ACL); GuardDuty when asked")

    def steps(self, ctx: Context) -> list[Step]:
        return [CertificateStep(), EndpointStep(), PublicDoorStep(), GuardDutyStep()]
