"""Helpers for the prove suite: run the real CLI (directly or under a harness) in its own process,
chain crash-killed runs, and read what a deployment owns in its sandbox."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import REPO, cli_env

REGION = "us-east-1"
RUN_TIMEOUT_S = 900


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)


def new_project(root: Path, deployment: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "radstream.yaml").write_text(f"target: sandbox\ndeployment: {deployment}\n")
    return root


def run(project: Path, *args: str, harness: list[str] | None = None, timeout: float = RUN_TIMEOUT_S) -> Run:
    """`radstream ARGS` in its own process; under `python -m HARNESS...  -- ARGS` when given."""
    command = [sys.executable, "-m", *harness, "--", *args] if harness else [sys.executable, "-m", "radstream.cli", *args]
    env = cli_env({"PYTHONPATH": str(REPO)})
    proc = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)


def start(project: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "radstream.cli", *args], cwd=project,
                            env=cli_env({"PYTHONPATH": str(REPO)}), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@dataclass
class Chain:
    kills: list[dict[str, Any]] = field(default_factory=list)
    final: Run | None = None
    seconds: float = 0.0


def crash_chain(project: Path, args: tuple[str, ...], ledger: Path, reference: Path | None = None,
                phases: str | None = None, extra: list[str] | None = None, max_runs: int = 400) -> Chain:
    """Run the command under the crash harness until a run is not killed."""
    harness = ["tests.support.crash_harness", "--ledger", str(ledger), *(extra or [])]
    if reference is not None:
        harness += ["--reference", str(reference)]
    if phases:
        harness += ["--phases", phases]
    chain, start_time = Chain(), time.monotonic()
    for _ in range(max_runs):
        result = run(project, *args, harness=harness)
        if result.code != -signal.SIGKILL:
            chain.final = result
            break
        chain.kills.append(json.loads(ledger.read_text().splitlines()[-1])["point"])
    chain.seconds = time.monotonic() - start_time
    assert chain.final is not None, f"still being killed after {max_runs} runs"
    return chain


def recorded(ledger: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["point"] for line in ledger.read_text().splitlines() if line.strip()]


# -- the sandbox a project runs against ----------------------------------------------------------
def sandbox_info(project: Path) -> dict[str, Any]:
    return json.loads((project / ".radstream" / "sandbox.json").read_text())


def aws(project: Path, service: str) -> Any:
    import boto3

    return boto3.client(service, region_name=REGION, endpoint_url=sandbox_info(project)["aws_endpoint"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def stop_sandbox(project: Path) -> None:
    from radstream.sandbox import daemon

    daemon.stop(project / ".radstream")


# Names AWS makes up: EC2 ids (security groups, launch templates, the VPC and its pieces), ACM's
# certificate ids, the cloud controller's load balancer name ("a" + the Service's UID). Two
# deployments differ there however alike they are. A secret's ARN ends in six random characters.
_GENERATED = re.compile(r"(security-group/sg-|launch-template/lt-|loadbalancer/a|vpc/vpc-|subnet/subnet-"
                        r"|natgateway/nat-|elastic-ip/eipalloc-|vpc-endpoint/vpce-|route-table/rtb-"
                        r"|internet-gateway/igw-|network-interface/eni-|instance/i-|event-source-mapping:"
                        r"|certificate/)[0-9a-f-]+|(?<=-deid-key-)[A-Za-z0-9]{6}$")


def owned(project: Path, deployment: str) -> list[str]:
    """ARNs of everything tagged with the deployment, the deployment id (also in its Glue spelling,
    with underscores) replaced by `<dep>` and generated ids by `<id>`, so two deployments can be compared."""
    from radstream.aws.inventory import deployment_resources

    found = deployment_resources(lambda service: aws(project, service), deployment)
    glue = deployment.replace("-", "_")
    return sorted(_GENERATED.sub(r"\1<id>", r["arn"].replace(deployment, "<dep>").replace(glue, "<dep>"))
                  for r in found)


def resource_types(arns: list[str]) -> Counter[str]:
    """`service:type` per ARN (`s3:bucket`, `iam:role`, `lambda:function`…)."""
    counts: Counter[str] = Counter()
    for arn in arns:
        service, resource = arn.split(":")[2], arn.split(":", 5)[5]
        kind = resource.replace(":", "/").split("/")[0] if ("/" in resource or ":" in resource) else "bucket"
        counts[f"{service}:{kind}"] += 1
    return counts


KUBE_KINDS = ("Namespace", "Node", "Pod", "Service", "Deployment", "DaemonSet", "HorizontalPodAutoscaler",
              "PodDisruptionBudget")


def kube_objects(project: Path) -> dict[str, Any]:
    """Names per kind in the Kubernetes emulator (pods and nodes: counts, their names are random)."""
    from radstream.kube.apply import list_objects
    from tests.support.kube import sandbox_api_client

    api = sandbox_api_client(sandbox_info(project))
    found: dict[str, Any] = {}
    for kind in KUBE_KINDS:
        items = list_objects(api, kind)
        names = sorted(f"{(o['metadata'].get('namespace') or '')}/{o['metadata']['name']}" for o in items)
        found[kind] = len(names) if kind in ("Pod", "Node") else names
    return found
