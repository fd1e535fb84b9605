"""Shared by the sandbox integration tests: one real sandbox daemon per test module, plain boto3
clients pointed at it, and tiny Lambda zips built on the fly."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
ACCOUNT = "123456789012"
ROLE_NAME = "sandbox-test-role"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
TRUST_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
# Test functions may call anything; the real policies' least privilege is proven in test_lambda_least_privilege.
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from radstream.sandbox import daemon

    state_dir = tmp_path_factory.mktemp("sandbox")
    endpoints = daemon.start(state_dir, timeout=60, region=REGION)
    try:
        # moto checks that a function's role exists; the sandbox holds functions to its policies.
        iam = client(endpoints, "iam")
        iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(TRUST_POLICY))
        iam.put_role_policy(RoleName=ROLE_NAME, PolicyName="test-functions", PolicyDocument=json.dumps(ALLOW_ALL))
        yield endpoints
    finally:
        daemon.stop(state_dir)


def client(sandbox: dict[str, Any], service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=sandbox["aws_endpoint"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def create_function(
    lambda_client: Any,
    name: str,
    files: dict[str, str],
    handler: str = "app.handler",
    timeout: int = 3,
    environment: dict[str, str] | None = None,
    layers: list[str] | None = None,
) -> str:
    from radstream.aws.propagation import retry_while_role_propagates

    # The sandbox, like AWS, refuses a role for a few seconds after its creation.
    response = retry_while_role_propagates(lambda: lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=ROLE_ARN,
        Handler=handler,
        Code={"ZipFile": zip_of(files)},
        Timeout=timeout,
        Environment={"Variables": environment or {}},
        Layers=layers or [],
    ))
    return response["FunctionArn"]


def wait_for_execution(sfn: Any, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.1)
    raise AssertionError(f"execution {execution_arn} still running after {timeout} s")


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


@contextmanager
def sandbox_project(root: Path, config_yaml: str) -> Iterator[Path]:
    """A project directory with its own running sandbox daemon (which has a registry), stopped after."""
    from radstream.sandbox import daemon

    (root / "radstream.yaml").write_text(config_yaml)
    info = daemon.start(root / ".radstream", timeout=120)
    try:
        if not info.get("registry"):
            pytest.skip("the sandbox has no registry: apt-get install -y docker-registry")
        yield root
    finally:
        daemon.stop(root / ".radstream")


@contextmanager
def loopback_moto() -> Iterator[str]:
    """A moto server on 127.0.0.1 (a free port) for a module's tests; its endpoint URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
