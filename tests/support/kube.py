"""Test support: a plain `kubernetes` ApiClient for a sandbox emulator, with a token made the way
the product makes one (`radstream.kube.client.eks_token` with the emulator's access key). The token
is not renewed: it lasts the emulator's token lifetime (15 minutes unless shortened)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REGION = "us-east-1"
CLUSTER = "radstream-test"


def sandbox_token(info: Mapping[str, Any], cluster: str = CLUSTER, region: str = REGION) -> str:
    from radstream.kube.client import eks_token
    from radstream.targets.sandbox import token_session

    return eks_token(token_session(dict(info), region), cluster, region)


def sandbox_api_client(info: Mapping[str, Any], token: str | None = None) -> Any:
    from kubernetes import client

    config = client.Configuration(host=info["kubernetes_endpoint"])
    config.ssl_ca_cert = info["kubernetes_ca"]
    config.api_key = {"authorization": token or sandbox_token(info)}
    config.api_key_prefix = {"authorization": "Bearer"}
    return client.ApiClient(config)
