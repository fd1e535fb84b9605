"""The local target: one background daemon on this machine hosts emulated AWS, the Kubernetes API
emulator, an image registry and Triton. Free, so nothing asks before creating."""

from __future__ import annotations

import json
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from radstream.checks import PIP_FIX, check, module_check
from radstream.errors import RadstreamError
from radstream.sandbox import LOAD_BALANCERS_FILE, MAX_WORKERS_PER_FUNCTION, SANDBOX_CREDENTIALS
from radstream.targets.base import ClientFactory, KubeAccess, Registry, Target


class SandboxTarget(Target):
    name = "sandbox"
    billable = False
    # moto's Athena answers every query with no rows, so the sandbox needs a real engine.
    query_engine = "duckdb"
    has_cost_explorer = False
    lambda_memory_matters = False
    function_concurrency = MAX_WORKERS_PER_FUNCTION
    runs_on_this_machine = True
    guardduty_findings = False
    # The sandbox's functions run in this interpreter, so the layer's wheels must load here.
    lambda_layer_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    # The load balancer's ingress is 127.0.0.1 here (radstream.sandbox.cluster), so clients connect by IP.
    tls_extra_names = (("localhost",), ("127.0.0.1",))

    @cached_property
    def endpoints(self) -> dict[str, Any]:
        """What the running daemon published (sandbox.json)."""
        from radstream.sandbox.daemon import STATE_FILE

        try:
            return json.loads((self.state_dir / STATE_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            raise RadstreamError(
                "the sandbox is not running", hint="start it with `radstream sandbox start` (up and demo start it for you)"
            ) from None

    def start(self, log: Callable[[str], None]) -> None:
        from radstream.sandbox import daemon

        if not daemon.status(self.state_dir).get("running"):
            log("starting the local sandbox (emulated AWS, Kubernetes API emulator, Triton)…")
            daemon.start(self.state_dir, region=self.settings.region, aws_endpoint_url=self.settings.aws.endpoint_url)
            self.__dict__.pop("endpoints", None)  # read the new daemon's endpoints, not a stale file's

    @property
    def aws_endpoint(self) -> str | None:
        return self.settings.aws.endpoint_url or self.endpoints["aws_endpoint"]

    def boto_session(self) -> Any:
        import boto3

        return boto3.Session(region_name=self.settings.region, **SANDBOX_CREDENTIALS)

    def kube_access(self, client: ClientFactory, cluster_name: str) -> KubeAccess:
        return KubeAccess(self.endpoints["kubernetes_endpoint"], Path(self.endpoints["kubernetes_ca"]),
                          f"radstream-sandbox-{self.settings.deployment}")

    def kube_token_session(self) -> Any | None:
        return token_session(self.endpoints, self.settings.region)

    def image_registry(self, client: ClientFactory, repository_name: str) -> Registry:
        host = self.endpoints.get("registry")
        if not host:
            raise RadstreamError(
                "the sandbox has no image registry to push the serving image to",
                hint="install Debian's registry (apt-get install -y docker-registry), then restart the sandbox: "
                     "radstream sandbox stop && radstream sandbox start",
            )
        # The stock NGC image (triton.base_image's default) stands for the sandbox's synthetic base; any
        # other base image named is an image in the sandbox's registry and used as it is.
        base = self.settings.triton.base_image
        if base == type(self.settings.triton).model_fields["base_image"].default:
            base = self.endpoints["base_image"]
        return Registry(f"{host}/{repository_name}", base, None)

    def triton_control_url(self) -> str | None:
        return self.endpoints["triton_http"]

    def prometheus_url(self) -> str | None:
        return self.settings.observability.prometheus_url or self.endpoints.get("prometheus")

    def load_balancer_url(self, dns_name: str) -> str | None:
        # The daemon's nginx for each open load balancer (radstream.sandbox.alb_controller) is where its DNS name leads.
        try:
            opened = json.loads((self.state_dir / LOAD_BALANCERS_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return (opened.get(dns_name) or {}).get("url")

    def running(self) -> bool:
        from radstream.sandbox import daemon

        return bool(daemon.status(self.state_dir).get("running"))

    def account_discarded(self) -> bool:
        # An emulator the user runs elsewhere (aws.endpoint_url) keeps its state without our daemon.
        return not self.settings.aws.endpoint_url and not self.running()

    def finish_teardown(self, stop_local: bool, warn: Callable[[str], None]) -> dict[str, Any]:
        if not stop_local:
            return {}
        from radstream.sandbox import daemon

        daemon.stop(self.state_dir)
        return {"sandbox_stopped": True}

    def doctor_checks(self) -> list[dict[str, Any]]:
        checks = [] if self.settings.aws.endpoint_url else [module_check("moto")]
        return [*checks, _tritonserver_check(), _shm_check()]


def token_session(endpoints: dict[str, Any], region: str) -> Any:
    """The session sandbox tokens are signed with: the access key the emulator published (and
    moto's secret)."""
    import boto3

    return boto3.Session(region_name=region, aws_access_key_id=endpoints["kubernetes_access_key_id"],
                         aws_secret_access_key=SANDBOX_CREDENTIALS["aws_secret_access_key"])


def _tritonserver_check() -> dict[str, Any]:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    binary = Path(spec.origin).parent / "tritonserver" / "bin" / "tritonserver" if spec and spec.origin else None
    ok = binary is not None and binary.exists()
    return check("tritonserver (from nvidia-pytriton)", ok, str(binary) if ok else "not found", PIP_FIX)


def _shm_check() -> dict[str, Any]:
    usage = shutil.disk_usage("/dev/shm") if Path("/dev/shm").exists() else None
    ok = usage is not None and usage.free > 64 * 1024 * 1024
    detail = f"{usage.free // (1024 * 1024)} MiB free" if usage else "absent"
    return check("/dev/shm for Triton", ok, detail, "mount a tmpfs on /dev/shm of at least 64 MiB")
