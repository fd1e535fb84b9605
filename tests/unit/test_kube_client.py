from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlparse

import boto3

from radstream.kube.client import EKS_TOKEN_PREFIX, eks_token


def test_eks_token_is_a_presigned_sts_call_bound_to_the_cluster():
    session = boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="us-east-1")
    token = eks_token(session, "radstream-cluster", "us-east-1")
    assert token.startswith(EKS_TOKEN_PREFIX)
    encoded = token[len(EKS_TOKEN_PREFIX):]
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert parsed.netloc == "sts.us-east-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-Expires"] == ["60"]
    assert "x-k8s-aws-id" in query["X-Amz-SignedHeaders"][0]
    assert "secret" not in url
