"""The ECR repository for the serving image: scan on push, keep only the newest images."""

from __future__ import annotations

import base64
import json
from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import from_list, missing, to_list


def lifecycle_policy(keep: int) -> dict[str, Any]:
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"keep the newest {keep} images",
                "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                "action": {"type": "expire"},
            }
        ]
    }


def _describe(ecr: Any, name: str) -> dict[str, Any] | None:
    try:
        return ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except Exception as exc:
        if error_code(exc) == "RepositoryNotFoundException":
            return None
        raise


def repository_drift(ecr: Any, name: str, tags: dict[str, str], keep: int = 10) -> list[str]:
    repo = _describe(ecr, name)
    if repo is None:
        return ["missing"]
    drift = []
    if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
        drift.append("scan-on-push")
    try:
        policy = json.loads(ecr.get_lifecycle_policy(repositoryName=name)["lifecyclePolicyText"])
    except Exception as exc:
        if error_code(exc) != "LifecyclePolicyNotFoundException":
            raise
        policy = None
    if policy != lifecycle_policy(keep):
        drift.append("lifecycle")
    if missing(from_list(ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"])["tags"]), tags):
        drift.append("tags")
    return drift


def ensure_repository(ecr: Any, name: str, tags: dict[str, str], keep: int = 10) -> bool:
    drift = repository_drift(ecr, name, tags, keep)
    if "missing" in drift:
        ecr.create_repository(
            repositoryName=name, tags=to_list(tags), imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="MUTABLE",
        )
        drift = ["lifecycle"]
    if "scan-on-push" in drift:
        ecr.put_image_scanning_configuration(repositoryName=name, imageScanningConfiguration={"scanOnPush": True})
    if "lifecycle" in drift:
        ecr.put_lifecycle_policy(repositoryName=name, lifecyclePolicyText=json.dumps(lifecycle_policy(keep)))
    if "tags" in drift:
        ecr.tag_resource(resourceArn=_existing(ecr, name)["repositoryArn"], tags=to_list(tags))
    return bool(drift)


def _existing(ecr: Any, name: str) -> dict[str, Any]:
    repo = _describe(ecr, name)
    if repo is None:
        raise LookupError(f"ECR repository {name} does not exist; run phase 0 first")
    return repo


def repository_uri(ecr: Any, name: str) -> str:
    return _existing(ecr, name)["repositoryUri"]


def delete_repository(ecr: Any, name: str) -> None:
    """Delete the repository and every image in it; quiet when gone."""
    try:
        ecr.delete_repository(repositoryName=name, force=True)
    except Exception as exc:
        if error_code(exc) != "RepositoryNotFoundException":
            raise

def ecr_credentials(ecr_client: Any) -> tuple[str, str, str]:
    """(registry host, username, password) from ECR's authorization token (valid 12 hours).
    The caller keeps the password in memory only."""
    data = ecr_client.get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    host = data["proxyEndpoint"].split("://", 1)[-1].rstrip("/")
    return host, username, password
