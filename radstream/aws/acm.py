"""The deployment's Triton server certificate imported into ACM, where the load balancer's TLS
listener takes it from (by ARN, the Service's ssl-cert annotation).

Imported, not requested: an internal load balancer's name is in no public DNS zone ACM could
validate, and the pipeline trusts the deployment's own CA, not a public one. Re-importing into the
same ARN replaces the certificate in place, so a renewed certificate never changes the ARN the
Service was created with (which the cloud controller reads once)."""

from __future__ import annotations

from typing import Any

from radstream.aws import unless_absent
from radstream.aws.tags import from_list, to_list
from radstream.names import TAG_DEPLOYMENT


def _tags(acm: Any, arn: str) -> dict[str, str]:
    return from_list(acm.list_tags_for_certificate(CertificateArn=arn).get("Tags", []))


def deployment_certificates(acm: Any, deployment: str) -> list[str]:
    """ARNs of the imported certificates tagged with this deployment."""
    found = []
    for page in acm.get_paginator("list_certificates").paginate():
        for summary in page["CertificateSummaryList"]:
            arn = summary["CertificateArn"]
            if _tags(acm, arn).get(TAG_DEPLOYMENT) == deployment:
                found.append(arn)
    return sorted(found)


def imported_body(acm: Any, arn: str) -> str | None:
    """The certificate (PEM) behind `arn`, None when there is no such certificate."""
    found = unless_absent(acm.get_certificate, "ResourceNotFoundException", CertificateArn=arn)
    return None if found is None else found["Certificate"]


def _same(a: str | None, b: bytes) -> bool:
    return a is not None and a.strip() == b.decode().strip()


def ensure_certificate(acm: Any, deployment: str, tags: dict[str, str], certificate: bytes, key: bytes,
                       chain: bytes, known_arn: str | None = None) -> str:
    """The ARN holding `certificate`: the recorded one, else the one tagged with the deployment,
    re-imported in place when its certificate differs; a new import when there is none."""
    arn = known_arn if known_arn and imported_body(acm, known_arn) is not None else None
    arn = arn or next(iter(deployment_certificates(acm, deployment)), None)
    if arn is not None and _same(imported_body(acm, arn), certificate):
        return arn
    arguments: dict[str, Any] = {"Certificate": certificate, "PrivateKey": key, "CertificateChain": chain}
    if arn is not None:
        acm.import_certificate(CertificateArn=arn, **arguments)
        # A re-import takes no tags; AWS keeps the old ones, moto drops them: set them either way.
        acm.add_tags_to_certificate(CertificateArn=arn, Tags=to_list(tags))
        return arn
    return acm.import_certificate(**arguments, Tags=to_list(tags))["CertificateArn"]


def delete_certificate(acm: Any, arn: str) -> None:
    """Delete; quiet when it is gone already."""
    unless_absent(acm.delete_certificate, "ResourceNotFoundException", CertificateArn=arn)
