"""Shared fixtures: a throwaway project directory and a way to run the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADSTREAM_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One content-addressed cache (the Lambda layer build) for the whole run, never the user's."""
    # Under pytest-xdist every worker has its own base temp; their common parent is shared, so the
    # layer is built once per run (its cache write is atomic, so a race only builds it twice).
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-cache"
    path.mkdir(exist_ok=True)
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def operator_policy_check():
    """Every AWS call of the operator's Context, here and in CLI subprocesses, must be allowed by
    manifests/iam/operator.json (radstream/aws/operator_policy.py)."""
    from radstream.aws.operator_policy import CHECK_VARIABLE

    with pytest.MonkeyPatch.context() as patch:
        # OPERATOR_POLICY_CHECK=0 with OPERATOR_POLICY_CALL_LOG=path records every call instead.
        patch.setenv(CHECK_VARIABLE, os.environ.get(CHECK_VARIABLE, "1"))
        yield


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with a minimal valid radstream.yaml."""
    (tmp_path / "radstream.yaml").write_text("target: sandbox\ndeployment: rs-test\n")
    return tmp_path


@pytest.fixture
def run_cli(project: Path):
    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "radstream.cli", *args],
            cwd=project, env=cli_env(env), capture_output=True, text=True, timeout=timeout,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run
