"""One authenticated request to one API call: the verbs on collections, objects and subresources,
lists (as Tables for kubectl get), watches as streams of JSON lines, logs as plain text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from radstream.sandbox.kube.api import Api, parse_body, scale_of
from radstream.sandbox.kube.errors import ApiError, bad_request
from radstream.sandbox.kube.kinds import Kind, Obj
from radstream.sandbox.kube.resource_metrics import require_metrics_api
from radstream.sandbox.kube.routes import Route, resolve
from radstream.sandbox.kube.selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from radstream.sandbox.kube.store import Gone, Store
from radstream.sandbox.kube.tables import table

WATCH_TIMEOUT_DEFAULT = 1800.0


def _selectors(query: dict[str, str]) -> tuple[Any, Any]:
    try:
        return parse_label_selector(query.get("labelSelector")), parse_field_selector(query.get("fieldSelector"))
    except ValueError as error:
        raise bad_request(str(error)) from None


def handle(api: Api, method: str, path: str, query: dict[str, str], content_type: str, body: bytes,
           accept: str = "application/json") -> tuple[int, Obj | Iterator[bytes] | bytes]:
    """One authenticated request: (HTTP status, JSON document, an iterator of watch lines, or the
    plain text of a log). A GET whose Accept asks for a Table (kubectl get) gets one."""
    target = resolve(path)
    if not isinstance(target, Route):
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        return 200, target
    kind, ns, name, sub = target.kind, target.namespace, target.name, target.subresource
    if kind.read_only:
        require_metrics_api(api.store)
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
    if kind.namespaced and name is not None and ns is None:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    store = api.store
    if name is None:
        labels, fields = _selectors(query)
        if method == "GET" and query.get("watch") in ("true", "1", "True"):
            return 200, _watch_lines(store, kind, ns, labels, fields, query)
        if method == "GET":
            with store.lock:
                items = store.list(kind.api_version, kind.kind, ns, labels, fields)
                rv = store.resource_version
            if _wants_table(accept):
                return 200, table(kind, items, str(rv))
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(rv)}, "items": items}
        if method == "POST":
            obj = parse_body(body)
            _check_body(obj, kind, ns)
            return 201, api.create(obj)
        if method == "DELETE":
            items = [api.delete(kind, i["metadata"].get("namespace"), i["metadata"]["name"])
                     for i in store.list(kind.api_version, kind.kind, ns, labels, fields)]
            return 200, {"kind": f"{kind.kind}List", "apiVersion": kind.api_version,
                         "metadata": {"resourceVersion": str(store.resource_version)}, "items": items}
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
    if sub == "log":
        if method != "GET":
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")
        return 200, api.pod_log(ns or "", name, query)
    if method == "GET":
        obj = store.get(kind.api_version, kind.kind, ns, name)
        if sub is None and _wants_table(accept):
            return 200, table(kind, [obj], obj["metadata"].get("resourceVersion"))
        return 200, scale_of(obj) if sub == "scale" else obj
    if method == "POST" and sub == "eviction":
        parse_body(body)
        return 201, api.evict(ns or "", name)
    if method == "PUT":
        obj = parse_body(body)
        if sub == "scale":
            with store.lock:
                current = store.get(kind.api_version, kind.kind, ns, name)
                return 200, api.set_replicas(current, obj, (obj.get("metadata") or {}).get("resourceVersion"))
        _check_body(obj, kind, ns)
        if (obj.get("metadata") or {}).get("name") != name:
            raise bad_request("the name of the object does not match the name on the URL")
        return 200, api.replace(obj, sub, (obj.get("metadata") or {}).get("resourceVersion"))
    if method == "PATCH":
        return api.patch(kind, ns, name, content_type, body, query.get("fieldManager"), sub)
    if method == "DELETE" and sub is None:
        deleted = api.delete(kind, ns, name)
        if kind.kind in ("Pod", "Service", "ServiceAccount"):  # the client expects the object back for these
            return 200, deleted
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": kind.plural, "uid": deleted["metadata"]["uid"],
                                 **({"group": kind.group} if kind.group else {})}}
    raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {path}")


def _wants_table(accept: str) -> bool:
    return any("as=Table" in media.replace(" ", "").split(";") and "g=meta.k8s.io" in media.replace(" ", "").split(";")
               for media in accept.split(","))


def _check_body(obj: Any, kind: Kind, namespace: str | None) -> None:
    if not isinstance(obj, dict):
        raise bad_request("the request body must be an object")
    if obj.setdefault("apiVersion", kind.api_version) != kind.api_version or obj.setdefault("kind", kind.kind) != kind.kind:
        raise bad_request(f"the body is a {obj.get('apiVersion')} {obj.get('kind')}, not a {kind.api_version} {kind.kind}")
    meta = obj.setdefault("metadata", {})
    if kind.namespaced:
        if meta.get("namespace") not in (None, "", namespace):
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        meta["namespace"] = namespace


def _watch_lines(store: Store, kind: Kind, namespace: str | None, labels: Any, fields: Any,
                 query: dict[str, str]) -> Iterator[bytes]:
    since = query.get("resourceVersion") or "0"
    try:
        since_rv = None if since == "0" else int(since)
        timeout = float(query.get("timeoutSeconds") or WATCH_TIMEOUT_DEFAULT)
    except ValueError:
        raise bad_request("resourceVersion and timeoutSeconds must be numbers") from None

    def match(obj: Obj) -> bool:
        meta = obj["metadata"]
        return (obj["apiVersion"], obj["kind"]) == (kind.api_version, kind.kind) \
            and (namespace is None or meta.get("namespace") == namespace) \
            and labels_match(labels, meta.get("labels")) and fields_match(fields, obj)

    def lines() -> Iterator[bytes]:
        try:
            for event, obj in store.watch(since_rv, match, timeout):
                yield json.dumps({"type": event, "object": obj}).encode() + b"\n"
        except Gone as error:
            status = ApiError(410, "Expired", str(error)).status()
            yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"

    return lines()
