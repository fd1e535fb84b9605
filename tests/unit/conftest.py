"""In-process moto's EKS answers as the sandbox's does (radstream.sandbox.eks_parity): access
entries, DescribeClusterVersions and the zones EKS refuses, which the cluster code relies on."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def eks_like_aws() -> None:
    from radstream.sandbox import eks_parity, moto_fixes

    eks_parity.install(moto_fixes._wrap)
