"""In-process moto's EKS answers as the sandbox's does (radstream.sandbox.eks_parity): access
entries, DescribeClusterVersions and the zones EKS refuses, which the cluster code relies on; and
its EC2 and Lambda keep ENIs, NAT gateways and their dependencies as AWS does (vpc_parity)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def eks_like_aws() -> None:
    from radstream.sandbox import eks_parity, moto_fixes, vpc_parity

    eks_parity.install(moto_fixes._wrap)
    vpc_parity.install(moto_fixes._wrap)
