"""A sandbox deployment to benchmark: `radstream up` in a project folder (a fresh temporary one unless
--project names one), the command, then teardown and the sandbox stopped (unless --keep)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

CONFIG = "target: sandbox\ndeployment: rs-bench\n"


def radstream(project: Path, *args: str) -> int:
    return subprocess.run([sys.executable, "-m", "radstream.cli", *args], cwd=project, check=False).returncode


def main(command: list[str], description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--project", type=Path, help="a project folder with radstream.yaml (default: a new one)")
    parser.add_argument("--keep", action="store_true", help="leave the deployment and the sandbox running")
    args, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="radstream-bench-") as tmp:
        project = args.project or Path(tmp)
        if not (project / "radstream.yaml").exists():
            (project / "radstream.yaml").write_text(CONFIG)
        code = radstream(project, "up", "--yes")
        try:
            if code == 0:
                code = radstream(project, *command, *rest)
        finally:
            if not args.keep:
                radstream(project, "teardown", "--yes", "--stop-sandbox")
    return code
