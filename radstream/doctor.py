"""What the chosen target needs, what is missing, and how to get it."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Any

from radstream.config import LoadedConfig

PIP_FIX = "pip install -e '.[sandbox]' (or run ./dev demo, which sets everything up)"


def _check(name: str, ok: bool, detail: str, fix: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "ok": ok, "detail": detail, "fix": fix, "required": required}


def _module(name: str, required: bool = True, fix: str = PIP_FIX) -> dict[str, Any]:
    found = importlib.util.find_spec(name) is not None
    return _check(f"python module {name}", found, "importable" if found else "not installed", fix, required)


def _tritonserver() -> dict[str, Any]:
    spec = importlib.util.find_spec("pytriton")
    binary = Path(spec.origin).parent / "tritonserver" / "bin" / "tritonserver" if spec and spec.origin else None
    ok = binary is not None and binary.exists()
    return _check("tritonserver (from nvidia-pytriton)", ok, str(binary) if ok else "not found", PIP_FIX)


def _shm() -> dict[str, Any]:
    usage = shutil.disk_usage("/dev/shm") if Path("/dev/shm").exists() else None
    ok = usage is not None and usage.free > 64 * 1024 * 1024
    detail = f"{usage.free // (1024 * 1024)} MiB free" if usage else "absent"
    return _check("/dev/shm for Triton", ok, detail, "mount a tmpfs on /dev/shm of at least 64 MiB")


CREDENTIALS_FIX = "configure credentials (aws configure, AWS_PROFILE or environment variables) or set aws.profile"
PERMISSIONS_FIX = ("attach manifests/iam/operator.json and operator-read.json to your user or role, their ${...} "
                   "placeholders filled in for this deployment (the check itself needs its iam:SimulatePrincipalPolicy)")


def _aws_checks(loaded: LoadedConfig) -> list[dict[str, Any]]:
    """Credentials that work, and a caller allowed what manifests/iam/operator.json grants."""
    settings = loaded.settings
    try:
        import boto3

        session = boto3.Session(profile_name=settings.aws.profile, region_name=settings.region)
        identity = session.client("sts", endpoint_url=settings.aws.endpoint_url).get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - any failure here means "no usable credentials"
        detail = f"{type(exc).__name__}: {exc}"
        return [_check("AWS credentials", False, detail, CREDENTIALS_FIX),
                _check("permissions", False, "not checked: no usable AWS credentials", CREDENTIALS_FIX)]
    return [_check("AWS credentials", True, f"account {identity['Account']}", ""),
            _permissions(session.client("iam", endpoint_url=settings.aws.endpoint_url), identity, loaded)]


def _permissions(iam: Any, identity: dict[str, str], loaded: LoadedConfig) -> dict[str, Any]:
    from radstream.aws.operator_policy import merged
    from radstream.aws.permissions import missing_actions, principal_arn
    from radstream.documents import operator_policies
    from radstream.names import Names, partition_of

    if identity["Arn"].endswith(":root"):  # the simulator refuses the root user, who may do anything
        return _check("permissions", True, "the account's root user (better: a user or role with the operator policies)", "")
    settings, principal = loaded.settings, principal_arn(identity["Arn"])
    names = Names(settings.deployment, identity["Account"], settings.region, partition_of(identity["Arn"]))
    document = merged(list(operator_policies(names).values()))
    try:
        missing = missing_actions(iam, principal, document)
    except Exception as exc:  # noqa: BLE001 - whatever stops the simulation is what to report
        return _check("permissions", False, f"could not simulate {principal}: {type(exc).__name__}: {exc}",
                      PERMISSIONS_FIX)
    if missing:
        return _check("permissions", False, f"{principal} may not: {', '.join(missing)}", PERMISSIONS_FIX)
    return _check("permissions", True, f"{principal} may do all that operator.json grants", "")


def run_checks(loaded: LoadedConfig) -> list[dict[str, Any]]:
    settings = loaded.settings
    checks = [
        _check("python >= 3.10", sys.version_info >= (3, 10), sys.version.split()[0], "install Python 3.10 or newer"),
        _check("config file", loaded.exists, str(loaded.path), "run `radstream init` (defaults apply without it)", required=False),
        _module("boto3"),
        _module("kubernetes"),
        _module("tritonclient"),
        _module("numpy"),
        _module("onnxruntime"),
    ]
    if settings.target == "sandbox":
        if not settings.aws.endpoint_url:
            checks.append(_module("moto"))
        checks += [_tritonserver(), _shm()]
    else:
        checks += _aws_checks(loaded)
        if settings.triton.builder != "daemonless":
            tool = settings.triton.builder
            checks.append(_check(tool, shutil.which(tool) is not None, shutil.which(tool) or "not on PATH",
                                 f"install {tool}, or set triton.builder: daemonless"))
    return checks
