"""The ordered phase registry 0–7. A phase whose module has not landed yet is listed by name and
says so honestly when run."""

from __future__ import annotations

from importlib import import_module

from radstream.phases.base import Phase

# number, name, summary, module holding the Phase subclass (None: not built yet)
REGISTRY: tuple[tuple[int, str, str, str | None], ...] = (
    (0, "foundation", "buckets, IAM, Lambdas, Step Functions, EventBridge, Kinesis, Firehose, ECR, Glue, Athena, EKS", "radstream.phases.p0_foundation:FoundationPhase"),
    (1, "nodegroup", "replace the undersized nodegroup: create, wait Ready, cordon and drain, delete the old", "radstream.phases.p1_nodegroup:NodegroupPhase"),
    (2, "triton", "build and push the Triton image, deploy it with PDB and HPA", "radstream.phases.p2_triton:TritonPhase"),
    (3, "expose", "LoadBalancer Service, health, model ready and one real inference", "radstream.phases.p3_expose:ExposePhase"),
    (4, "wiring", "point InvokeInference at the endpoint, run one real execution", "radstream.phases.p4_wiring:WiringPhase"),
    (5, "telemetry", "Kinesis and Firehose active, a probe record lands in S3 and is queried", "radstream.phases.p5_telemetry:TelemetryPhase"),
    (6, "demo", "real studies through the pipeline, per-stage latency", "radstream.phases.p6_demo:DemoPhase"),
    (7, "cleanup", "cost control: scale the nodegroup to 0, report what still costs money", "radstream.phases.p7_cleanup:CleanupPhase"),
)
UP_PHASES = (0, 1, 2, 3, 4, 5)
DEMO_PHASE = 6


class NotBuilt(Phase):
    implemented = False

    def __init__(self, number: int, name: str, summary: str):
        self.number, self.name, self.summary = number, name, summary


def _load(number: int, name: str, summary: str, target: str | None) -> Phase:
    if target is None:
        return NotBuilt(number, name, summary)
    module_name, _, class_name = target.partition(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return NotBuilt(number, name, summary)
    return getattr(module, class_name)()


def all_phases() -> list[Phase]:
    return [_load(*row) for row in REGISTRY]


def resolve(token: str) -> int:
    """`3` or `expose` → 3."""
    for number, name, _, _ in REGISTRY:
        if token == str(number) or token.lower() == name:
            return number
    choices = ", ".join(f"{n} ({name})" for n, name, _, _ in REGISTRY)
    from radstream.errors import ConfigError

    raise ConfigError(f"unknown phase {token!r}", hint=f"use one of: {choices}")
