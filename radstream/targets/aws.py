"""A real AWS account: the user's credentials (aws.profile or the default chain), AWS's endpoints,
EKS for Kubernetes, ECR for images, Athena for queries. It bills, so commands ask first."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from radstream.checks import check
from radstream.targets.base import ClientFactory, KubeAccess, Registry, Target

CREDENTIALS_FIX = "configure credentials (aws configure, AWS_PROFILE or environment variables) or set aws.profile"
PERMISSIONS_FIX = ("attach manifests/iam/operator.json and operator-read.json to your user or role, their ${...} "
                   "placeholders filled in for this deployment (the check itself needs its iam:SimulatePrincipalPolicy)")


class AwsTarget(Target):
    name = "aws"
    billable = True
    query_engine = "athena"
    has_cost_explorer = True
    lambda_memory_matters = True
    function_concurrency = None
    runs_on_this_machine = False
    guardduty_findings = True

    @property
    def lambda_layer_python(self) -> str:  # type: ignore[override]
        from radstream.aws.packaging import LAMBDA_PYTHON

        return LAMBDA_PYTHON

    def start(self, log: Callable[[str], None]) -> None:
        return None

    @property
    def aws_endpoint(self) -> str | None:
        return self.settings.aws.endpoint_url

    def boto_session(self) -> Any:
        import boto3

        return boto3.Session(region_name=self.settings.region, profile_name=self.settings.aws.profile)

    def kube_access(self, client: ClientFactory, cluster_name: str) -> KubeAccess:
        from radstream.aws.eks import cluster_api

        arn, endpoint, ca = cluster_api(client("eks"), cluster_name)
        with tempfile.NamedTemporaryFile(prefix="radstream-eks-ca-", suffix=".crt", delete=False) as ca_file:
            ca_file.write(ca)
        return KubeAccess(endpoint, Path(ca_file.name), arn)

    def kube_token_session(self) -> Any | None:
        return None

    def image_registry(self, client: ClientFactory, repository_name: str) -> Registry:
        from radstream.aws.ecr import ecr_credentials

        host, username, password = ecr_credentials(client("ecr"))
        return Registry(f"{host}/{repository_name}", self.settings.triton.base_image, (username, password))

    def load_balancer_url(self, dns_name: str) -> str | None:
        return f"https://{dns_name}"

    def running(self) -> bool:
        return True

    def account_discarded(self) -> bool:
        return False

    def finish_teardown(self, stop_local: bool, warn: Callable[[str], None]) -> dict[str, Any]:
        if stop_local:
            warn("--stop-sandbox only applies to the sandbox target; ignored")
        return {}

    def doctor_checks(self) -> list[dict[str, Any]]:
        checks = self._account_checks()
        builder = self.settings.triton.builder
        if builder != "daemonless":
            found = shutil.which(builder)
            checks.append(check(builder, found is not None, found or "not on PATH",
                                f"install {builder}, or set triton.builder: daemonless"))
        return checks

    def _account_checks(self) -> list[dict[str, Any]]:
        """Credentials that work, and a caller allowed what manifests/iam/operator.json grants."""
        from radstream.aws.permissions import caller_identity

        endpoint = self.aws_endpoint
        try:
            session = self.boto_session()
            identity = caller_identity(session.client("sts", endpoint_url=endpoint))
        except Exception as exc:  # noqa: BLE001 - any failure here means "no usable credentials"
            detail = f"{type(exc).__name__}: {exc}"
            return [check("AWS credentials", False, detail, CREDENTIALS_FIX),
                    check("permissions", False, "not checked: no usable AWS credentials", CREDENTIALS_FIX)]
        return [check("AWS credentials", True, f"account {identity['Account']}", ""),
                self._permissions(session.client("iam", endpoint_url=endpoint), identity)]

    def _permissions(self, iam: Any, identity: dict[str, str]) -> dict[str, Any]:
        from radstream.aws.operator_policy import merged
        from radstream.aws.permissions import missing_actions, principal_arn
        from radstream.documents import operator_policies
        from radstream.names import Names, partition_of

        if identity["Arn"].endswith(":root"):  # the simulator refuses the root user, who may do anything
            return check("permissions", True, "the account's root user (better: a user or role with the operator policies)", "")
        settings, principal = self.settings, principal_arn(identity["Arn"])
        names = Names(settings.deployment, identity["Account"], settings.region, partition_of(identity["Arn"]))
        document = merged(list(operator_policies(names).values()))
        try:
            missing = missing_actions(iam, principal, document)
        except Exception as exc:  # noqa: BLE001 - whatever stops the simulation is what to report
            return check("permissions", False, f"could not simulate {principal}: {type(exc).__name__}: {exc}",
                         PERMISSIONS_FIX)
        if missing:
            return check("permissions", False, f"{principal} may not: {', '.join(missing)}", PERMISSIONS_FIX)
        return check("permissions", True, f"{principal} may do all that operator.json grants", "")
