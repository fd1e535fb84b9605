"""The PATCH flavours the API server accepts: JSON merge patch (RFC 7386), strategic merge (lists of
containers, env, ports... merge by key), JSON patch (RFC 6902), and the delta server-side apply
makes from what a field manager applied before and applies now."""

from __future__ import annotations

import copy
from typing import Any

from radstream.sandbox.kube.errors import ApiError, bad_request
from radstream.sandbox.kube.kinds import Obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: list[Any]) -> str | None:
    """The key a strategic merge uses for a list field, or None when the list is atomic."""
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    if field == "ports":
        return "containerPort" if any("containerPort" in i for i in items) else "port"
    return {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
            "imagePullSecrets": "name", "volumeMounts": "mountPath", "conditions": "type"}.get(field)


def strategic_merge(target: Any, patch: Any) -> Any:
    """Merge patch, except that known lists (containers, env, ports, ...) merge item by key.

    Honours the `$patch: replace` and per-item `$patch: delete` directives.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for field, value in patch.items():
        if field.startswith("$"):
            continue
        current = result.get(field)
        if value is None:
            result.pop(field, None)
        elif isinstance(value, list) and (key := _merge_key(field, value + (current if isinstance(current, list) else []))):
            result[field] = _merge_list(current if isinstance(current, list) else [], value, key)
        else:
            result[field] = strategic_merge(current, value)
    return result


def _merge_list(current: list[Obj], patch: list[Obj], key: str) -> list[Obj]:
    merged = [copy.deepcopy(i) for i in current]
    for item in patch:
        position = next((n for n, old in enumerate(merged) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if position is not None:
                merged.pop(position)
        elif position is None:
            merged.append(strategic_merge(None, item))
        else:
            merged[position] = strategic_merge(merged[position], item)
    return merged


def _pointer(path: str) -> list[str]:
    if path and not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def _walk(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            name, parts = op["op"], _pointer(op["path"])
            if name in ("move", "copy"):
                value = copy.deepcopy(_walk(doc, _pointer(op["from"])))
                if name == "move":
                    doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
                name, op = "add", {"value": value}
            if name == "test":
                if _walk(doc, parts) != op["value"]:
                    raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
                continue
            if not parts:
                doc = copy.deepcopy(op["value"]) if name in ("add", "replace") else None
                continue
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if name == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif name in ("add", "replace"):
                value = copy.deepcopy(op["value"])
                if isinstance(parent, list):
                    if name == "add":
                        parent.insert(len(parent) if last == "-" else int(last), value)
                    else:
                        parent[int(last)] = value
                else:
                    if name == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = value
            else:
                raise bad_request(f"unknown JSON patch operation {name!r}")
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise ApiError(422, "Invalid", f"JSON patch operation {op!r} failed: {error!r}") from None
    return doc


def apply_delta(last: Any, new: Any) -> Any:
    """The strategic patch turning what a manager applied last time into what it applies now.

    New values win; fields (and keyed list items) the manager applied before but no longer applies
    are deleted: the part of server-side apply's field ownership this emulator models.
    """
    if not (isinstance(last, dict) and isinstance(new, dict)):
        return new
    delta: Obj = {}
    for field, value in new.items():
        old = last.get(field)
        key = _merge_key(field, value + old) if isinstance(value, list) and isinstance(old, list) else None
        if key:
            previous = {item.get(key): item for item in old}
            kept = {item.get(key) for item in value}
            delta[field] = [apply_delta(previous.get(item.get(key)), item) for item in value] + [
                {key: gone, "$patch": "delete"} for gone in previous if gone not in kept
            ]
        else:
            delta[field] = apply_delta(old, value)
    for field in last:
        if field not in new:
            delta[field] = None
    return delta
