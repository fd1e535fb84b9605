"""Builds the official `kubernetes` client for the target, with every write counted.

Both targets authenticate the EKS way: a bearer token made by presigning STS GetCallerIdentity,
exactly as `aws eks get-token` does (no aws CLI needed), signed with
- aws: the deployment's credentials, for the EKS endpoint and CA from `describe_cluster`;
- sandbox: the access key the emulator admits, from `.radstream/sandbox.json`.
Such a token lives 15 minutes, shorter than a nodegroup creation or a slow rollout, so the client
mints a new one before then and, should one still be refused (clock skew, a shorter-lived sandbox),
once more on a 401."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radstream.context import Context

EKS_TOKEN_PREFIX = "k8s-aws-v1."
EKS_CLUSTER_HEADER = "x-k8s-aws-id"  # EKS requires it signed: a token is good for one cluster
# STS ignores X-Amz-Expires here: the URL, and so the token, is good 15 minutes after X-Amz-Date.
# aws-iam-authenticator sends 60, which older authenticators insist on.
EKS_TOKEN_PRESIGN_SECONDS = 60
EKS_TOKEN_LIFETIME_SECONDS = 900
# Well before the 15 minutes, so a token is never sent in its last minutes.
TOKEN_REFRESH_SECONDS = 600.0


def eks_token(session, cluster_name: str, region: str) -> str:
    from botocore.signers import RequestSigner

    sts = session.client("sts", region_name=region)
    signer = RequestSigner(
        sts.meta.service_model.service_id, region, "sts", "v4", session.get_credentials(), session.events
    )
    url = signer.generate_presigned_url(
        {
            "method": "GET",
            "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
            "body": {},
            "headers": {EKS_CLUSTER_HEADER: cluster_name},
            "context": {},
        },
        region_name=region,
        expires_in=EKS_TOKEN_PRESIGN_SECONDS,
        operation_name="",
    )
    return EKS_TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")



class BearerToken:
    """The current token of one client; `mint` makes a new one. Thread-safe: a client's requests
    may run on several threads."""

    def __init__(self, mint: Callable[[], str]) -> None:
        self._mint, self._lock = mint, threading.Lock()
        self.value, self._minted = mint(), time.monotonic()

    def renew(self) -> str:
        with self._lock:
            self.value, self._minted = self._mint(), time.monotonic()
            return self.value

    def current(self) -> str:
        if time.monotonic() - self._minted > TOKEN_REFRESH_SECONDS:
            return self.renew()
        return self.value


def api_client(ctx: Context):
    """A kubernetes ApiClient for ctx's target whose writes feed ctx.counter and whose token
    never goes stale."""
    from kubernetes import client as k8s

    from radstream.runlog import kube_call

    region, cluster_name = ctx.config.region, ctx.config.cluster_name
    access = ctx.target.kube_access(ctx.client, cluster_name)
    configuration = k8s.Configuration()
    configuration.host = access.host
    configuration.ssl_ca_cert = str(access.ca_file)
    session = ctx.target.kube_token_session() or ctx.boto_session
    token = BearerToken(lambda: eks_token(session, cluster_name, region))
    configuration.api_key_prefix = {"authorization": "Bearer"}
    configuration.api_key = {"authorization": token.value}
    def refresh(configured: Any) -> None:  # the client calls it before it serializes each request
        configured.api_key.update(authorization=token.current())

    configuration.refresh_api_key_hook = refresh  # type: ignore[assignment]  # the client declares it None

    class CountingApiClient(k8s.ApiClient):
        # radstream.kube.apply records its retries here.
        counter = ctx.counter

        def call_api(self, method, url, header_params=None, *args, **kwargs):
            response = super().call_api(method, url, header_params, *args, **kwargs)
            if response.status == 401:
                # A token that expired since the headers were made (callers reuse them for their
                # retries, hence in place) is replaced, once; nothing was done with the refused call.
                response.read()
                header_params = header_params if header_params is not None else {}
                for key in [k for k in header_params if k.lower() == "authorization"]:
                    del header_params[key]
                header_params["authorization"] = f"Bearer {token.renew()}"
                response = super().call_api(method, url, header_params, *args, **kwargs)
            kube_call(method, url, response.status)
            # Like the AWS hook: a refused or failed write (404 on delete, 409, 5xx) changed nothing.
            if 200 <= response.status <= 299:
                self.counter.record_kube(method, url)
            return response

    return CountingApiClient(configuration)
