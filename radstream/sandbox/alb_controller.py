"""The sandbox's data plane for Application Load Balancers: an ALB made in the emulated account
(elbv2) becomes a real door on this machine, an nginx on 127.0.0.1 (radstream.sandbox.tls_front)
that terminates TLS with its listener's ACM certificate, enforces its WAFv2 web ACL
(radstream.sandbox.waf_rules) and proxies to the local Triton.

About once a second, for every active `application` load balancer with an HTTPS listener whose
default action forwards to a target group: the door opens when, as on AWS, traffic would reach
Triton — the target group has registered targets (on AWS, the nodegroup's Auto Scaling group
attached to it; moto registers the group's instances) and its port is the node port of a Service
the TritonBridge takes for Triton's. Without a web ACL the door is plain TLS, as AWS serves it; a
web ACL that cannot be enforced here keeps it shut (fail closed). A door closes when its load
balancer, listener or targets go. Why a door stays shut is logged once per reason.

Clients find the doors in `index_path` (the state dir's load-balancers.json), rewritten atomically
on every change: {<ALB DNS name>: {"url": "https://127.0.0.1:<port>", "arn": <load balancer ARN>}}."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from radstream.sandbox.cloud_controller import imported_certificate
from radstream.sandbox.tls_front import TlsFronts
from radstream.sandbox.waf_rules import WafPolicy, policy_for

log = logging.getLogger(__name__)

RECONCILE_INTERVAL = 1.0
# Fronts of ALBs share the TLS fronts' directory with the Classic ELBs' ("a" + 31 hex digits).
FRONT_PREFIX = "alb-"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Door:
    """What one ALB's front needs; equal doors need no change."""

    arn: str
    name: str
    dns_name: str
    certificate_arn: str
    policy: WafPolicy | None


# --- pure part ------------------------------------------------------------------------------------
def forwarded_target_group(listener: Obj) -> str | None:
    """The target group an HTTPS listener's default action forwards to, if it does."""
    if listener.get("Protocol") != "HTTPS":
        return None
    for action in listener.get("DefaultActions") or []:
        if action.get("Type") == "forward":
            groups = [g["TargetGroupArn"] for g in (action.get("ForwardConfig") or {}).get("TargetGroups") or []]
            return action.get("TargetGroupArn") or (groups[0] if groups else None)
    return None


def why_shut(registered_targets: int, target_group_port: int | None, triton_node_ports: Iterable[int]) -> str | None:
    """Why traffic through the target group would not reach Triton; None when it would."""
    if registered_targets == 0:
        return "no registered targets"
    if target_group_port not in set(triton_node_ports):
        return f"target group port {target_group_port} is no Triton Service's node port"
    return None


def index(doors: Mapping[str, tuple[Door, int]]) -> Obj:
    return {door.dns_name: {"url": f"https://127.0.0.1:{port}", "arn": door.arn}
            for door, port in sorted(doors.values(), key=lambda opened: opened[0].dns_name)}


def write_atomically(path: Path, data: Obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


# --- the controller -------------------------------------------------------------------------------
class AlbController:
    """Reconciles the emulated account's ALBs with their fronts every `interval` seconds.
    `is_triton_service(service)` says which Services of `store` are Triton's (TritonBridge);
    `published` gives `aws_endpoint` and `triton_http`, read at each pass."""

    def __init__(self, store: Any, published: Mapping[str, str], region: str, fronts: TlsFronts, index_path: Path,
                 is_triton_service: Callable[[Obj], bool], interval: float = RECONCILE_INTERVAL) -> None:
        self.store, self.published, self.region, self.fronts = store, published, region, fronts
        self.index_path, self.is_triton_service, self.interval = Path(index_path), is_triton_service, interval
        self.open: dict[str, tuple[Door, int]] = {}  # load balancer ARN -> (door, local port)
        self._reasons: dict[str, str] = {}  # load balancer ARN -> why it is shut, as last logged
        self._clients: dict[str, Any] = {}
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        write_atomically(self.index_path, {})  # no door of an earlier daemon is open
        self._thread = threading.Thread(target=self._run, name="alb-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for arn in list(self.open):
            self._close(arn)
        write_atomically(self.index_path, {})

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile_once()
                self._failing = False
            except Exception as error:  # the endpoint may be down or busy: keep the doors as they are
                if not self._failing:
                    log.warning("ALB controller: cannot read load balancers (%s); retrying", error)
                self._failing = True
            self._stop.wait(self.interval)

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            from radstream.sandbox import SANDBOX_CREDENTIALS

            self._clients[service] = boto3.client(
                service, region_name=self.region, endpoint_url=self.published["aws_endpoint"], **SANDBOX_CREDENTIALS,
                config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
        return self._clients[service]

    def reconcile_once(self) -> None:
        upstream = urlsplit(self.published.get("triton_http") or "").port
        wanted: dict[str, Door] = {}
        changed = False
        balancers = self._application_load_balancers()
        self._reasons = {arn: r for arn, r in self._reasons.items() if arn in {b["LoadBalancerArn"] for b in balancers}}
        for balancer in balancers:
            door, reason = self._door(balancer) if upstream is not None else (None, "no local Triton")
            if door is None:
                changed |= self._shut(balancer["LoadBalancerArn"], balancer["LoadBalancerName"], reason or "")
            else:
                wanted[door.arn] = door
        for arn in [arn for arn in self.open if arn not in wanted]:
            changed |= self._close(arn)
        for arn, door in wanted.items():
            assert upstream is not None
            certificate, key = imported_certificate(door.certificate_arn)
            port = self.fronts.ensure(FRONT_PREFIX + door.name, certificate, key, upstream, door.policy)
            if port is None:  # nginx or ModSecurity is missing: TlsFronts logged it
                changed |= self._close(arn)
                continue
            self._reasons.pop(arn, None)
            if self.open.get(arn) != (door, port):
                log.info("ALB controller: %s opens on https://127.0.0.1:%d%s", door.name, port,
                         " with its web ACL" if door.policy else "")
                self.open[arn] = (door, port)
                changed = True
        if changed:
            write_atomically(self.index_path, index(self.open))

    def _application_load_balancers(self) -> list[Obj]:
        pages = self._client("elbv2").get_paginator("describe_load_balancers").paginate()
        return [lb for page in pages for lb in page["LoadBalancers"]
                if lb.get("Type") == "application" and (lb.get("State") or {}).get("Code") == "active"]

    def _door(self, balancer: Obj) -> tuple[Door | None, str | None]:
        """The balancer's door, or why it has none."""
        elbv2, arn = self._client("elbv2"), balancer["LoadBalancerArn"]
        listeners = elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        forwarding = [(listener, forwarded_target_group(listener)) for listener in listeners]
        listener, group_arn = next(((lis, g) for lis, g in forwarding if g is not None), (None, None))
        if listener is None or group_arn is None:
            return None, "no HTTPS listener forwarding to a target group"
        group = elbv2.describe_target_groups(TargetGroupArns=[group_arn])["TargetGroups"][0]
        targets = elbv2.describe_target_health(TargetGroupArn=group_arn)["TargetHealthDescriptions"]
        reason = why_shut(len(targets), group.get("Port"), self._triton_node_ports())
        if reason is not None:
            return None, reason
        found = self._client("wafv2").get_web_acl_for_resource(ResourceArn=arn).get("WebACL")
        try:
            policy = policy_for(found) if found else None
        except ValueError as error:
            return None, f"its web ACL cannot be enforced here: {error}"
        return Door(arn, balancer["LoadBalancerName"], balancer["DNSName"],
                    listener["Certificates"][0]["CertificateArn"], policy), None

    def _triton_node_ports(self) -> set[int]:
        return {port["nodePort"] for service in self.store.list("v1", "Service") if self.is_triton_service(service)
                for port in service["spec"].get("ports") or [] if port.get("nodePort")}

    def _shut(self, arn: str, name: str, reason: str) -> bool:
        """Keep `arn` shut, saying why once; True when its door was open."""
        if self._reasons.get(arn) != reason:
            log.info("ALB controller: no door for %s: %s", name, reason)
            self._reasons[arn] = reason
        return self._close(arn)

    def _close(self, arn: str) -> bool:
        """Close the door of `arn`; False when it was not open."""
        opened = self.open.pop(arn, None)
        if opened is None:
            return False
        self.fronts.remove(FRONT_PREFIX + opened[0].name)
        log.info("ALB controller: %s closed", opened[0].name)
        return True
