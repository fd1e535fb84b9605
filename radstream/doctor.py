"""What the chosen target needs, what is missing, and how to get it."""

from __future__ import annotations

import sys
from typing import Any

from radstream.checks import check, module_check
from radstream.config import LoadedConfig


def run_checks(loaded: LoadedConfig) -> list[dict[str, Any]]:
    from radstream.targets import target_for

    checks = [
        check("python >= 3.10", sys.version_info >= (3, 10), sys.version.split()[0], "install Python 3.10 or newer"),
        check("config file", loaded.exists, str(loaded.path), "run `radstream init` (defaults apply without it)", required=False),
        *(module_check(name) for name in ("boto3", "kubernetes", "tritonclient", "numpy", "onnxruntime")),
    ]
    return checks + target_for(loaded).doctor_checks()
