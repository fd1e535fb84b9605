"""The launch template of the managed nodegroup: the nodes' root volume (EKS refuses `diskSize`
beside a launch template) and the deployment's tags on the instances and volumes it launches, which
EKS's own template leaves untagged, so Cost Explorer by tag sees the nodes, the largest item of the bill."""

from __future__ import annotations

from typing import Any

from radstream.aws import error_code
from radstream.aws.tags import to_list

ROOT_DEVICE = "/dev/xvda"  # the root volume of EKS's AL2023 AMIs
NODE_RESOURCES = ("instance", "volume")  # what the template tags when it launches a node
_MISSING = ("InvalidLaunchTemplateName.NotFoundException", "InvalidLaunchTemplateId.NotFound",
            "InvalidLaunchTemplateId.Malformed")


def node_template_data(disk_gib: int, tags: dict[str, str]) -> dict[str, Any]:
    """Encrypted gp3 root volume; IMDSv2 only, with the hop that pods need to reach it."""
    return {
        "BlockDeviceMappings": [{"DeviceName": ROOT_DEVICE, "Ebs": {
            "VolumeSize": disk_gib, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True}}],
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 2},
        "TagSpecifications": [{"ResourceType": kind, "Tags": to_list(tags)} for kind in NODE_RESOURCES],
    }


def template_disk_gib(data: dict[str, Any]) -> int | None:
    for mapping in data.get("BlockDeviceMappings") or []:
        if mapping.get("DeviceName") == ROOT_DEVICE and (mapping.get("Ebs") or {}).get("VolumeSize"):
            return int(mapping["Ebs"]["VolumeSize"])
    return None


def describe_version(ec2: Any, *, name: str | None = None, template_id: str | None = None,
                     version: str = "$Latest") -> dict[str, Any] | None:
    """{"id", "version", "data"} of one version of the template (by name or id); None when absent."""
    by = {"LaunchTemplateName": name} if name else {"LaunchTemplateId": template_id}
    try:
        found = ec2.describe_launch_template_versions(**by, Versions=[version])["LaunchTemplateVersions"]
    except Exception as exc:
        if error_code(exc) in _MISSING:
            return None
        raise
    if not found:
        return None
    return {"id": found[0]["LaunchTemplateId"], "version": str(found[0]["VersionNumber"]),
            "data": found[0].get("LaunchTemplateData") or {}}


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    # What the nodes get: the root volume and the tags (EC2 answers the rest with its own defaults).
    def tags(data: dict[str, Any]) -> dict[str, dict[str, str]]:
        return {s["ResourceType"]: {t["Key"]: t["Value"] for t in s.get("Tags") or []}
                for s in data.get("TagSpecifications") or [] if s["ResourceType"] in NODE_RESOURCES}

    return template_disk_gib(found) == template_disk_gib(wanted) and tags(found) == tags(wanted)


def launch_template_drift(ec2: Any, name: str, data: dict[str, Any]) -> list[str]:
    found = describe_version(ec2, name=name)
    if found is None:
        return ["missing"]
    return [] if _same(found["data"], data) else ["data"]


def ensure_launch_template(ec2: Any, name: str, data: dict[str, Any], tags: dict[str, str]) -> dict[str, str]:
    """The template's {"id", "version"} holding `data`: created when missing, a new version when its
    latest differs (a nodegroup made from an older version is replaced, never changed in place)."""
    found = describe_version(ec2, name=name)
    if found is None:
        created = ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData=data,
            TagSpecifications=[{"ResourceType": "launch-template", "Tags": to_list(tags)}])["LaunchTemplate"]
        return {"id": created["LaunchTemplateId"], "version": str(created["LatestVersionNumber"])}
    if not _same(found["data"], data):
        version = ec2.create_launch_template_version(LaunchTemplateId=found["id"], LaunchTemplateData=data)
        return {"id": found["id"], "version": str(version["LaunchTemplateVersion"]["VersionNumber"])}
    return {"id": found["id"], "version": found["version"]}


def delete_launch_template(ec2: Any, name: str) -> None:
    """Quiet when gone (looked up first: moto answers a delete of a missing name as a malformed request)."""
    found = describe_version(ec2, name=name)
    if found is None:
        return
    try:
        ec2.delete_launch_template(LaunchTemplateId=found["id"])
    except Exception as exc:
        if error_code(exc) not in _MISSING:
            raise
