"""The AWS CLI (Debian's v2, which `./dev test` installs) against a sandbox, as a user would run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest


def aws_cli_path() -> str:
    # /usr/bin first: a pyenv shim named `aws` may sit earlier on PATH without a CLI behind it.
    found = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
    if found is None:
        pytest.skip("the AWS CLI is not installed: `./dev test` installs Debian's awscli")
    return found


def aws_cli(project: Path, *args: str) -> dict[str, Any]:
    """One AWS CLI call against the project's sandbox, with the sandbox's static keys and nothing
    from the user's own AWS configuration."""
    endpoint = json.loads((project / ".radstream" / "sandbox.json").read_text())["aws_endpoint"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(project),
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_PAGER": ""}
    proc = subprocess.run([aws_cli_path(), *args, "--endpoint-url", endpoint, "--region", "us-east-1",
                           "--output", "json"], env=env, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout or "{}")
