"""The REST paths: which resource, namespace, name and subresource a URL names, and the discovery
documents (/version, /api, /apis, each group version's resource list) clients read first."""

from __future__ import annotations

from dataclasses import dataclass

from radstream.sandbox.kube.errors import ApiError
from radstream.sandbox.kube.kinds import KINDS, Kind, Obj

SERVER_VERSION = {
    "major": "1", "minor": "30", "gitVersion": "v1.30.0-radstream-sandbox", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-04-17T00:00:00Z", "goVersion": "go1.22.2",
    "compiler": "gc", "platform": "linux/amd64",
}
_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Route:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


def _group_versions() -> dict[str, list[Kind]]:
    versions: dict[str, list[Kind]] = {}
    for kind in KINDS:
        versions.setdefault(kind.api_version, []).append(kind)
    return versions


_GROUP_VERSIONS = _group_versions()


def resolve(path: str) -> Route | Obj:
    """Map a URL path to a resource route, or return the discovery document it names."""
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return SERVER_VERSION
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
    if parts == ["apis"]:
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(gv) for gv in _GROUP_VERSIONS if "/" in gv]}
    if parts[:1] == ["api"] and len(parts) >= 2:
        group_version, rest = parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) == 2:
        matching = [gv for gv in _GROUP_VERSIONS if gv.startswith(parts[1] + "/")]
        if matching:
            return _group(matching[0]) | {"kind": "APIGroup", "apiVersion": "v1"}
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    kinds = {k.plural: k for k in _GROUP_VERSIONS.get(group_version, [])}
    if not kinds:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    if not rest:
        return _resource_list(group_version)
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in kinds and kinds[rest[2]].namespaced:
        namespace, rest = rest[1], rest[2:]
    if rest[0] not in kinds or len(rest) > 3:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    kind = kinds[rest[0]]
    subresource = rest[2] if len(rest) == 3 else None
    if subresource and subresource not in kind.subresources:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return Route(kind, namespace, rest[1] if len(rest) > 1 else None, subresource)


def _group(group_version: str) -> Obj:
    group, version = group_version.split("/")
    entry = {"groupVersion": group_version, "version": version}
    return {"name": group, "versions": [entry], "preferredVersion": entry}


def _resource_list(group_version: str) -> Obj:
    resources = []
    for kind in _GROUP_VERSIONS[group_version]:
        resources.append({"name": kind.plural, "singularName": kind.kind.lower(), "namespaced": kind.namespaced,
                          "kind": kind.kind, "verbs": ["get", "list", "watch"] if kind.read_only else _VERBS,
                          "shortNames": list(kind.short_names)})
        for sub in kind.subresources:
            entry = {"name": f"{kind.plural}/{sub}", "singularName": "", "namespaced": kind.namespaced,
                     "kind": kind.kind, "verbs": ["get", "patch", "update"]}
            if sub == "scale":
                entry.update(group="autoscaling", version="v1", kind="Scale")
            elif sub == "eviction":
                entry.update(group="policy", version="v1", kind="Eviction", verbs=["create"])
            elif sub == "log":
                entry.update(kind="Pod", verbs=["get"])
            resources.append(entry)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
