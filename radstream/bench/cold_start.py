"""`radstream bench cold-start`: what a Lambda cold start costs each handler.

A cold start on Lambda is mostly the handler's import. Each handler is imported here as Lambda
imports it: the function's own zip and the dependency layer unpacked side by side, in a fresh
interpreter (`python -I`, nothing else on the path), `repeat` times; the median import time and
which heavy libraries the import pulled in are reported. Then, from the target's own logs, every
REPORT line of the function: the Init Duration of its cold starts, and its first invocations'
duration beside the warm ones' (on the sandbox these are the emulator's environments; on aws,
Lambda's)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

# Libraries whose import costs a cold start tens to hundreds of milliseconds.
HEAVY_MODULES = ("numpy", "PIL", "pydicom", "pydantic", "tritonclient", "gevent", "onnxruntime", "boto3", "botocore")
_PROBE = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
started = time.perf_counter()
import handler
elapsed = (time.perf_counter() - started) * 1000
print(json.dumps({"import_ms": elapsed, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def import_profile(function_zip: bytes, layer_zip: bytes, repeat: int = 5) -> dict[str, Any]:
    """Median import ms of the handler in `function_zip` with the layer, and the heavy modules it loads."""
    with tempfile.TemporaryDirectory(prefix="radstream-cold-") as tmp:
        code, layer = Path(tmp) / "code", Path(tmp) / "layer"
        zipfile.ZipFile(BytesIO(function_zip)).extractall(code)
        zipfile.ZipFile(BytesIO(layer_zip)).extractall(layer)
        paths = json.dumps([str(code), str(layer / "python")])
        runs = []
        for _ in range(repeat):
            out = subprocess.run([sys.executable, "-I", "-c", _PROBE, paths], capture_output=True, text=True,
                                 timeout=120, check=True, cwd=tmp)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    loaded = set(runs[-1]["modules"])
    return {"import_ms": round(statistics.median(r["import_ms"] for r in runs), 1),
            "heavy_modules": [m for m in HEAVY_MODULES if m in loaded]}


def report_figures(reports: Sequence[dict[str, float]]) -> dict[str, Any]:
    """From parsed REPORT lines: cold starts, their Init Duration, and first against warm durations."""
    cold = [r for r in reports if "init_ms" in r]
    warm = [r["duration_ms"] for r in reports if "init_ms" not in r]

    def p50(values: Sequence[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    return {"invocations": len(reports), "cold_starts": len(cold), "init_ms_p50": p50([r["init_ms"] for r in cold]),
            "first_invoke_ms_p50": p50([r["duration_ms"] for r in cold]), "warm_invoke_ms_p50": p50(warm)}


def run(ctx: Any, repeat: int = 5) -> dict[str, Any]:
    from radstream.aws.lambda_logs import report_lines
    from radstream.aws.packaging import function_zip, layer_zip
    from radstream.names import LAMBDA_FUNCTIONS
    from radstream.resources import root

    layer = layer_zip(ctx.cache_dir, python=f"{sys.version_info.major}.{sys.version_info.minor}").read_bytes()
    logs = ctx.client("logs")
    rows = []
    for function in LAMBDA_FUNCTIONS:
        name = ctx.names.lambda_function(function)
        rows.append({"function": function, **import_profile(function_zip(root(), function), layer, repeat),
                     **report_figures(report_lines(logs, f"/aws/lambda/{name}"))})
    return {"repeat": repeat, "python": f"{sys.version_info.major}.{sys.version_info.minor}", "functions": rows}


def format_table(result: dict[str, Any]) -> str:
    from radstream.bench.text import table

    lines = table([("function", 19), ("import ms", 10), ("cold", 6), ("init ms", 9), ("1st ms", 9), ("warm ms", 9),
                   ("heavy imports", 16)],
                  ([r["function"], r["import_ms"], r["cold_starts"], r["init_ms_p50"], r["first_invoke_ms_p50"],
                    r["warm_invoke_ms_p50"], ", ".join(r["heavy_modules"]) or "-"] for r in result["functions"]))
    lines.append(f"\nimport: median of {result['repeat']} fresh interpreters (Python {result['python']}) with the "
                 "function's zip and the layer; the rest from the functions' REPORT log lines")
    return "\n".join(lines)
