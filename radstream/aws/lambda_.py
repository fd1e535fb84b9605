"""Lambda layers and functions. Code is compared by CodeSha256, so an unchanged zip is never
re-uploaded; environment variables set by later phases (e.g. the inference endpoint) are kept."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from radstream.aws import make_arn, unless_absent
from radstream.aws.packaging import LAMBDA_PYTHON
from radstream.aws.propagation import retry_while_role_propagates
from radstream.aws.tags import missing

# python3.12 runs on Amazon Linux 2023 (python3.11's Amazon Linux 2 ends support in mid-2026); the
# layer is built for the same Python.
RUNTIME = f"python{LAMBDA_PYTHON}"
HANDLER = "handler.handler"
LAMBDA_TIMEOUT_S = 60
LAMBDA_MEMORY_MB = 1024  # preprocessing decodes radiographs of several megapixels


def code_sha256(zip_bytes: bytes) -> str:
    """Lambda's CodeSha256: base64 of the raw sha256 digest."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


def _newest_layer_version(lam: Any, name: str) -> dict[str, Any] | None:
    versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
    return max(versions, key=lambda v: v["Version"], default=None)


def newest_layer_version(lam: Any, name: str) -> str | None:
    """The ARN of the layer's newest version, whatever it holds (None before the first publish)."""
    newest = _newest_layer_version(lam, name)
    return newest["LayerVersionArn"] if newest else None


def current_layer_version(lam: Any, name: str, zip_bytes: bytes) -> str | None:
    """The ARN of the newest layer version if it holds exactly these bytes, else None."""
    newest = _newest_layer_version(lam, name)
    if newest is None:
        return None
    found = lam.get_layer_version(LayerName=name, VersionNumber=newest["Version"])
    return found["LayerVersionArn"] if found["Content"]["CodeSha256"] == code_sha256(zip_bytes) else None


def ensure_layer(lam: Any, name: str, zip_bytes: bytes, description: str = "") -> tuple[str, bool]:
    """(layer version ARN, changed): reuse the newest version when its code matches, else publish."""
    current = current_layer_version(lam, name, zip_bytes)
    if current is not None:
        return current, False
    published = lam.publish_layer_version(
        LayerName=name, Description=description, Content={"ZipFile": zip_bytes}, CompatibleRuntimes=[RUNTIME]
    )
    return published["LayerVersionArn"], True


def delete_layer(lam: Any, name: str) -> None:
    """Delete every version of the layer; quiet when there are none."""
    for page in lam.get_paginator("list_layer_versions").paginate(LayerName=name):
        for version in page.get("LayerVersions", []):
            lam.delete_layer_version(LayerName=name, VersionNumber=version["Version"])


def function_configuration(role_arn: str, env: dict[str, str], layers: list[str], timeout: int,
                           memory: int, vpc: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The configuration RadStream gives a function: CreateFunction's parameters less name, code and
    tags. `vpc`: {"SubnetIds", "SecurityGroupIds"}, where the function's ENIs go."""
    return {
        "Role": role_arn,
        "Handler": HANDLER,
        "Runtime": RUNTIME,
        "Timeout": timeout,
        "MemorySize": memory,
        "Environment": {"Variables": env},
        "Layers": layers,
        "VpcConfig": {key: sorted((vpc or {}).get(key, [])) for key in ("SubnetIds", "SecurityGroupIds")},
    }


def create_parameters(name: str, configuration: dict[str, Any], tags: dict[str, str]) -> dict[str, Any]:
    """CreateFunction's parameters without the code (what `radstream render` shows)."""
    return {"FunctionName": name, **configuration, "Tags": tags}


def _desired_config(role_arn: str, env: dict[str, str], current_env: dict[str, str], layers: list[str],
                    timeout: int, memory: int, vpc: dict[str, list[str]] | None) -> dict[str, Any]:
    # Our variables win; others (set by later phases) survive.
    return function_configuration(role_arn, {**current_env, **env}, layers, timeout, memory, vpc)


def function_drift(
    lam: Any, name: str, *, role_arn: str, zip_bytes: bytes, env: dict[str, str], layers: list[str],
    tags: dict[str, str], timeout: int = 60, memory: int = 512, vpc: dict[str, list[str]] | None = None,
) -> list[str]:
    """What differs from the desired function; ["missing"] when it does not exist."""
    found = unless_absent(lam.get_function, "ResourceNotFoundException", FunctionName=name)
    if found is None:
        return ["missing"]
    config = found["Configuration"]
    drift = []
    if config["CodeSha256"] != code_sha256(zip_bytes):
        drift.append("code")
    current_env = config.get("Environment", {}).get("Variables", {})
    current = {
        "Role": config["Role"], "Handler": config["Handler"], "Runtime": config["Runtime"],
        "Timeout": config["Timeout"], "MemorySize": config["MemorySize"],
        "Environment": {"Variables": current_env}, "Layers": [layer["Arn"] for layer in config.get("Layers", [])],
        "VpcConfig": {key: sorted((config.get("VpcConfig") or {}).get(key) or [])
                      for key in ("SubnetIds", "SecurityGroupIds")},
    }
    if current != _desired_config(role_arn, env, current_env, layers, timeout, memory, vpc):
        drift.append("configuration")
    if missing(found.get("Tags", {}), tags):
        drift.append("tags")
    return drift


def ensure_function(
    lam: Any, name: str, *, role_arn: str, zip_bytes: bytes, env: dict[str, str], layers: list[str],
    tags: dict[str, str], timeout: int = 60, memory: int = 512, vpc: dict[str, list[str]] | None = None,
) -> bool:
    """Create or repair the function; uploads code only when its sha256 differs."""
    drift = function_drift(lam, name, role_arn=role_arn, zip_bytes=zip_bytes, env=env, layers=layers,
                           tags=tags, timeout=timeout, memory=memory, vpc=vpc)
    if "missing" in drift:
        _create(lam, name, _desired_config(role_arn, env, {}, layers, timeout, memory, vpc), zip_bytes, tags)
        return True
    if "code" in drift:
        lam.update_function_code(FunctionName=name, ZipFile=zip_bytes)
        _wait_updated(lam, name)
    if "configuration" in drift:
        current_env = lam.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
        lam.update_function_configuration(
            FunctionName=name, **_desired_config(role_arn, env, current_env, layers, timeout, memory, vpc)
        )
        _wait_updated(lam, name)
    if "tags" in drift:
        arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        lam.tag_resource(Resource=arn, Tags=tags)
    return bool(drift)


def _create(lam: Any, name: str, config: dict[str, Any], zip_bytes: bytes, tags: dict[str, str]) -> None:
    retry_while_role_propagates(
        lambda: lam.create_function(**create_parameters(name, config, tags), Code={"ZipFile": zip_bytes}))
    lam.get_waiter("function_active_v2").wait(FunctionName=name)


def _wait_updated(lam: Any, name: str) -> None:
    # The next update is refused while one is in progress.
    lam.get_waiter("function_updated_v2").wait(FunctionName=name)


def function_arn(region: str, account_id: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "lambda", region, account_id, f"function:{name}")


def function_memory(lam: Any, name: str) -> int:
    return int(lam.get_function_configuration(FunctionName=name)["MemorySize"])


def set_function_memory(lam: Any, name: str, memory_mb: int) -> None:
    """Give the function `memory_mb` (and with it CPU); returns once the update is in effect."""
    _wait_updated(lam, name)
    lam.update_function_configuration(FunctionName=name, MemorySize=memory_mb)
    _wait_updated(lam, name)


def function_environment(lam: Any, name: str) -> dict[str, str]:
    """The environment variables the function runs with."""
    return dict((lam.get_function_configuration(FunctionName=name).get("Environment") or {}).get("Variables") or {})


def delete_function(lam: Any, name: str) -> None:
    unless_absent(lam.delete_function, "ResourceNotFoundException", FunctionName=name)


def _policy_statements(lam: Any, name: str) -> list[dict[str, Any]]:
    found = unless_absent(lam.get_policy, "ResourceNotFoundException", FunctionName=name)
    return json.loads(found["Policy"]).get("Statement", []) if found else []


def invoke_permission_drift(lam: Any, name: str, statement_id: str, principal: str, source_arn: str) -> list[str]:
    """Whether the function's resource policy lets `principal` invoke it for `source_arn` alone."""
    statement = next((s for s in _policy_statements(lam, name) if s.get("Sid") == statement_id), None)
    if statement is None:
        return ["missing"]
    condition = statement.get("Condition", {}).get("ArnLike", {}).get("AWS:SourceArn")
    same = statement.get("Principal", {}).get("Service") == principal and condition == source_arn
    return [] if same else ["permission"]


def ensure_invoke_permission(lam: Any, name: str, statement_id: str, principal: str, source_arn: str) -> bool:
    drift = invoke_permission_drift(lam, name, statement_id, principal, source_arn)
    if "permission" in drift:  # a statement id is added once: a changed one is replaced
        lam.remove_permission(FunctionName=name, StatementId=statement_id)
    if drift:
        lam.add_permission(FunctionName=name, StatementId=statement_id, Action="lambda:InvokeFunction",
                           Principal=principal, SourceArn=source_arn)
    return bool(drift)


def delete_invoke_permission(lam: Any, name: str, statement_id: str) -> None:
    """Quiet when the statement or the function is gone."""
    unless_absent(lam.remove_permission, "ResourceNotFoundException", FunctionName=name, StatementId=statement_id)
