"""Builds the official `kubernetes` client for the target, with every write counted.

- sandbox: the emulator's endpoint and bearer token from `.radstream/sandbox.json`;
- aws: the EKS endpoint and CA from `describe_cluster` and a bearer token made by presigning STS
  GetCallerIdentity, exactly as `aws eks get-token` does (no aws CLI needed)."""

from __future__ import annotations

import base64
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from radstream.context import Context

EKS_TOKEN_PREFIX = "k8s-aws-v1."
# STS accepts presigned URLs for this long; EKS requires the header below to be signed.
EKS_TOKEN_SECONDS = 60
EKS_CLUSTER_HEADER = "x-k8s-aws-id"


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
        expires_in=EKS_TOKEN_SECONDS,
        operation_name="",
    )
    return EKS_TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def api_client(ctx: Context):
    """A kubernetes ApiClient for ctx's target whose writes feed ctx.counter."""
    from kubernetes import client as k8s

    class CountingApiClient(k8s.ApiClient):
        # radstream.kube.apply records its retries here.
        counter = ctx.counter

        def call_api(self, method, url, *args, **kwargs):
            response = super().call_api(method, url, *args, **kwargs)
            # Like the AWS hook: a refused or failed write (404 on delete, 409, 5xx) changed nothing.
            if 200 <= response.status <= 299:
                self.counter.record_kube(method, url)
            return response

    configuration = k8s.Configuration()
    if ctx.config.target == "sandbox":
        configuration.host = ctx.sandbox["kubernetes_endpoint"]
        token = ctx.sandbox["kubernetes_token"]
    else:
        cluster = ctx.client("eks").describe_cluster(name=ctx.config.cluster_name)["cluster"]
        configuration.host = cluster["endpoint"]
        ca = tempfile.NamedTemporaryFile(prefix="radstream-eks-ca-", suffix=".crt", delete=False)
        ca.write(base64.b64decode(cluster["certificateAuthority"]["data"]))
        ca.close()
        configuration.ssl_ca_cert = ca.name
        token = eks_token(ctx.boto_session, ctx.config.cluster_name, ctx.config.region)
    configuration.api_key = {"authorization": token}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return CountingApiClient(configuration)
