"""Kubeconfigs for standard tools (kubectl, k9s, helm): the target's cluster, its CA, and a user whose
token comes from an exec credential plugin, as `aws eks update-kubeconfig` writes them.

The plugin is RadStream itself (`python -m radstream.cli -c <radstream.yaml> kubeconfig token`,
with this interpreter's absolute path, so it needs neither PATH nor the aws CLI): on both targets it
prints the ExecCredential that `aws eks get-token` would, signed with the credentials the deployment
uses (the sandbox's admitted access key; on aws the configured profile or environment).
No token is ever written into a kubeconfig."""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError

if TYPE_CHECKING:
    from radstream.context import Context

KUBECONFIG_FILE = "kubeconfig"
EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
_SECTIONS = ("clusters", "users", "contexts")


def _cluster(ctx: Context) -> tuple[str, str, str]:
    """(the name kubeconfigs give the cluster, server URL, base64 of the CA's PEM)."""
    if not ctx.target.running():
        raise RadstreamError(f"the {ctx.target.name} target is not running",
                             hint="start it with `radstream sandbox start` (up starts it for you)")
    access = ctx.target.kube_access(ctx.client, ctx.config.cluster_name)
    return access.name, access.host, base64.b64encode(access.ca_file.read_bytes()).decode()


def build(ctx: Context, config_path: Path) -> dict[str, Any]:
    """A whole kubeconfig holding the target's cluster, user and context, the context current."""
    name, server, ca_data = _cluster(ctx)
    plugin = {
        "apiVersion": EXEC_API_VERSION,
        "command": sys.executable,
        "args": ["-m", "radstream.cli", "--config", str(Path(config_path).resolve()), "kubeconfig", "token"],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": name, "user": {"exec": plugin}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
    }


def _dump(document: dict[str, Any]) -> bytes:
    import yaml

    return yaml.safe_dump(document, sort_keys=False).encode()


def write(path: Path, document: dict[str, Any]) -> None:
    from radstream.private_file import write_private

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, _dump(document))


def user_kubeconfig(environ: dict[str, str] | None = None) -> Path:
    """The file kubectl reads first: $KUBECONFIG's first entry, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    first = next((p for p in (environ.get("KUBECONFIG") or "").split(os.pathsep) if p), None)
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def merge(path: Path, document: dict[str, Any]) -> None:
    """Put `document`'s entries into the kubeconfig at `path` (replacing those of the same name,
    keeping every other) and make its context current."""
    import yaml

    existing = yaml.safe_load(path.read_text()) if path.exists() else None
    merged = existing if isinstance(existing, dict) else {"apiVersion": "v1", "kind": "Config", "preferences": {}}
    for section in _SECTIONS:
        new = {e["name"]: e for e in document[section]}
        kept = [e for e in merged.get(section) or [] if e.get("name") not in new]
        merged[section] = kept + list(new.values())
    merged["current-context"] = document["current-context"]
    write(path, merged)


def exec_credential(ctx: Context) -> dict[str, Any]:
    """What `aws eks get-token` prints: a token for the target's cluster and when to replace it."""
    from radstream.kube.client import TOKEN_REFRESH_SECONDS, eks_token

    region = ctx.config.region
    session = ctx.target.kube_token_session() or ctx.boto_session
    token = eks_token(session, ctx.config.cluster_name, region)
    # Like the product's own client: replaced well before the 15 minutes a token lives.
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + TOKEN_REFRESH_SECONDS))
    return {"kind": "ExecCredential", "apiVersion": EXEC_API_VERSION, "spec": {},
            "status": {"expirationTimestamp": expires, "token": token}}
