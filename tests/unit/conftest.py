"""In-process moto's EKS answers as the sandbox's does (radstream.sandbox.eks_parity): access
entries, DescribeClusterVersions, add-ons (eks_addons) and the zones EKS refuses, which the cluster
code relies on; and
its EC2 and Lambda keep ENIs, NAT gateways and their dependencies as AWS does (vpc_parity); its
ELBv2 and WAFv2 refuse what AWS refuses around the public door (elb_waf_parity); its Secrets
Manager keeps a deleted secret's name taken for its recovery window (moto_fixes)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def eks_like_aws() -> None:
    from radstream.sandbox import eks_addons, eks_parity, elb_waf_parity, moto_fixes, vpc_parity

    eks_parity.install(moto_fixes._wrap)
    eks_addons.install()
    vpc_parity.install(moto_fixes._wrap)
    elb_waf_parity.install(moto_fixes._wrap)
    from moto.secretsmanager.models import SecretsManagerBackend

    moto_fixes._wrap(SecretsManagerBackend, "create_secret", moto_fixes.secret_names_stay_taken_while_scheduled_for_deletion)
