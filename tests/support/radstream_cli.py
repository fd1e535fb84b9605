"""`radstream` run as a user runs it: a subprocess in the project's folder, with the test
environment (tests/conftest.cli_env)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import CliResult, cli_env


def cli(project: Path, *args: str, timeout: float = 900) -> CliResult:
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args], check=False, cwd=project, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
