"""In-memory object store of the Kubernetes API emulator.

Objects are plain JSON dicts keyed by (apiVersion, kind, namespace, name). The store owns what every
object gets from a real API server regardless of its kind: uid, a global resourceVersion counter,
creationTimestamp, generation (bumped when `spec` changes), metadata validation, label and field
selectors, and the event history that watches replay. Kind-specific behaviour lives in server.py.
"""

from __future__ import annotations

import copy
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Kind:
    """One resource type the emulator serves."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def qualified(self) -> str:
        """How API error messages name the resource: `pods`, `deployments.apps`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS: tuple[Kind, ...] = (
    Kind("v1", "Namespace", "namespaces", False, ("status",), ("ns",)),
    Kind("v1", "Node", "nodes", False, ("status",), ("no",)),
    Kind("v1", "Pod", "pods", True, ("status", "eviction", "log"), ("po",)),
    Kind("v1", "Service", "services", True, ("status",), ("svc",)),
    Kind("v1", "ConfigMap", "configmaps", True, (), ("cm",)),
    Kind("v1", "Secret", "secrets", True),
    Kind("v1", "ServiceAccount", "serviceaccounts", True, (), ("sa",)),
    Kind("v1", "Event", "events", True, (), ("ev",)),
    Kind("apps/v1", "Deployment", "deployments", True, ("status", "scale"), ("deploy",)),
    Kind("apps/v1", "DaemonSet", "daemonsets", True, ("status",), ("ds",)),
    Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("status",), ("hpa",)),
    Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("status",), ("pdb",)),
)
_BY_KIND = {(k.api_version, k.kind): k for k in KINDS}


def kind_of(api_version: str, kind: str) -> Kind:
    try:
        return _BY_KIND[(api_version, kind)]
    except KeyError:
        raise ApiError(404, "NotFound", f"the server could not find the requested resource ({api_version} {kind})") from None


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    # Same alphabet as Kubernetes name generation: no vowels, no look-alike characters.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --- errors -------------------------------------------------------------------------------------


class ApiError(Exception):
    """An API failure, rendered as a Kubernetes Status object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        status: Obj = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _details(kind: Kind, name: str, **extra: Any) -> Obj:
    details: Obj = {"name": name, "kind": kind.plural, **extra}
    if kind.group:
        details["group"] = kind.group
    return details


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.qualified} "{name}" not found', _details(kind, name))


def already_exists(kind: Kind, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists", f'{kind.qualified} "{name}" already exists', _details(kind, name))


def conflict(kind: Kind, name: str) -> ApiError:
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {kind.qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        _details(kind, name),
    )


def invalid(kind: Kind, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """causes: (field, reason, message) triples, e.g. ("metadata.name", "FieldValueRequired", "Required value")."""
    text = ", ".join(f"{field}: {message}" for field, _, message in causes)
    label = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
    return ApiError(
        422, "Invalid", f'{label} "{name}" is invalid: {text}',
        _details(kind, name, causes=[{"field": f, "reason": r, "message": m} for f, r, m in causes]),
    )


# --- metadata validation ------------------------------------------------------------------------

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def _label_key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "name part must be non-empty"
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if len(name) > 63 or not _LABEL_NAME.match(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None


def _label_value_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "a label value must be a string"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
    return None


def label_problems(labels: Any, field: str) -> list[tuple[str, str, str]]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [(field, "FieldValueInvalid", "Invalid value: must be a map of strings")]
    causes = []
    for key, value in labels.items():
        problem = _label_key_problem(key)
        if problem:
            causes.append((field, "FieldValueInvalid", f'Invalid value: "{key}": {problem}'))
        problem = _label_value_problem(value)
        if problem:
            causes.append((f"{field}", "FieldValueInvalid", f'Invalid value: "{value}": {problem}'))
    return causes


def metadata_problems(obj: Obj) -> list[tuple[str, str, str]]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif not isinstance(name, str) or len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "FieldValueInvalid",
                       f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                       "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    causes += label_problems(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None and not (isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values())):
        causes.append(("metadata.annotations", "FieldValueInvalid", "Invalid value: must be a map of strings"))
    return causes


# --- selectors ----------------------------------------------------------------------------------

Requirement = tuple[str, str, tuple[str, ...]]  # (key, operator, values); operators as in matchExpressions

_SET_TERM = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(r"^\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*$")
_EXISTS_TERM = re.compile(r"^\s*(!?)\s*([^\s!=(),]+)\s*$")


def _split_terms(text: str) -> list[str]:
    """Split a selector on commas that are not inside `in (a,b)` parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse `a=b,c!=d,e in (x,y),f notin (z),g,!h` into requirements; ValueError when malformed."""
    requirements: list[Requirement] = []
    for term in _split_terms(text or ""):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append((m.group(1), "In" if m.group(2) == "in" else "NotIn", values))
        elif m := _EQ_TERM.match(term):
            requirements.append((m.group(1), "NotIn" if m.group(2) == "!=" else "In", (m.group(3),)))
        elif m := _EXISTS_TERM.match(term):
            requirements.append((m.group(2), "DoesNotExist" if m.group(1) else "Exists", ()))
        else:
            raise ValueError(f"unable to parse requirement: {term.strip()!r}")
    return requirements


def selector_requirements(selector: Obj | None) -> list[Requirement]:
    """Requirements of a LabelSelector object (matchLabels + matchExpressions)."""
    selector = selector or {}
    requirements: list[Requirement] = [(k, "In", (v,)) for k, v in (selector.get("matchLabels") or {}).items()]
    for expr in selector.get("matchExpressions") or []:
        requirements.append((expr["key"], expr["operator"], tuple(expr.get("values") or ())))
    return requirements


def labels_match(requirements: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in requirements:
        present = key in labels
        value = labels.get(key)
        if op == "In" and not (present and value in values):
            return False
        if op == "NotIn" and present and value in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op in ("Gt", "Lt"):
            try:
                number, bound = int(value or ""), int(values[0])
            except (ValueError, IndexError):
                return False
            if (op == "Gt" and not number > bound) or (op == "Lt" and not number < bound):
                return False
    return True


def selector_string(selector: Obj | None) -> str:
    """The textual form of a LabelSelector (what Scale.status.selector carries)."""
    parts = []
    for key, op, values in selector_requirements(selector):
        if op == "In" and len(values) == 1:
            parts.append(f"{key}={values[0]}")
        elif op in ("In", "NotIn"):
            parts.append(f"{key} {op.lower()} ({','.join(values)})")
        else:
            parts.append(key if op == "Exists" else f"!{key}")
    return ",".join(parts)


FieldRequirement = tuple[list[str], bool, str]  # (path, equal?, value)


def parse_field_selector(text: str | None) -> list[FieldRequirement]:
    """Parse `spec.nodeName=n1,metadata.name!=x`; any dotted path of the object is accepted."""
    requirements = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ValueError(f"invalid field selector: {term.strip()!r}")
        requirements.append((m.group(1).split("."), m.group(2) != "!=", m.group(3)))
    return requirements


def fields_match(requirements: list[FieldRequirement], obj: Obj) -> bool:
    for path, equal, expected in requirements:
        value: Any = obj
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        text = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
        if (text == expected) != equal:
            return False
    return True


# --- the store ----------------------------------------------------------------------------------


class Gone(Exception):
    """A watch asked for a resourceVersion older than the retained history."""


class Store:
    """Thread-safe objects plus the event history watches read from.

    Stored dicts are never mutated in place (updates replace them), so events can share them;
    callers always receive deep copies.
    """

    def __init__(self, history: int = 5000) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._events: deque[tuple[int, str, Obj]] = deque(maxlen=history)
        self._closed = False

    @property
    def lock(self) -> threading.RLock:
        """Held by callers that need several operations to be atomic (read-modify-write)."""
        return self._lock

    @property
    def resource_version(self) -> int:
        return self._rv

    def close(self) -> None:
        """Wake and end every watch."""
        with self._lock:
            self._closed = True
            self._changed.notify_all()

    @staticmethod
    def key(obj: Obj) -> Key:
        meta = obj.get("metadata") or {}
        return (obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta.get("name") or "")

    def _record(self, event: str, obj: Obj) -> None:
        self._events.append((self._rv, event, obj))
        self._changed.notify_all()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def find(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._objects.get((api_version, kind, namespace or "", name))
            return copy.deepcopy(obj) if obj is not None else None

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj:
        obj = self.find(api_version, kind, namespace, name)
        if obj is None:
            raise not_found(kind_of(api_version, kind), name)
        return obj

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: list[Requirement] | None = None,
        field_selector: list[FieldRequirement] | None = None,
    ) -> list[Obj]:
        """Matching objects sorted by namespace and name; namespace None means all namespaces."""
        with self._lock:
            found = [
                obj for (av, k, ns, _), obj in sorted(self._objects.items())
                if av == api_version and k == kind and (namespace is None or ns == namespace)
                and labels_match(label_selector or [], obj["metadata"].get("labels"))
                and fields_match(field_selector or [], obj)
            ]
            return copy.deepcopy(found)

    def create(self, obj: Obj) -> Obj:
        obj = copy.deepcopy(obj)
        kind = kind_of(obj["apiVersion"], obj["kind"])
        meta = obj.setdefault("metadata", {})
        if not kind.namespaced:
            meta.pop("namespace", None)
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = f"{meta['generateName']}{random_suffix()}"
            causes = metadata_problems(obj)
            if causes:
                raise invalid(kind, meta.get("name") or "", causes)
            if kind.namespaced and ("v1", "Namespace", "", meta.get("namespace", "")) not in self._objects:
                raise not_found(kind_of("v1", "Namespace"), meta.get("namespace", ""))
            key = self.key(obj)
            if key in self._objects:
                raise already_exists(kind, meta["name"])
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso(), generation=1, resourceVersion=self._next_rv())
            for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
                meta.pop(transient, None)
            self._objects[key] = obj
            self._record("ADDED", obj)
            return copy.deepcopy(obj)

    def update(self, obj: Obj, expect_rv: str | None = None) -> Obj:
        """Replace an object; `expect_rv` enforces optimistic concurrency. A no-op update writes nothing."""
        obj = copy.deepcopy(obj)
        kind = kind_of(obj["apiVersion"], obj["kind"])
        if not kind.namespaced:
            obj["metadata"].pop("namespace", None)
        with self._lock:
            key = self.key(obj)
            current = self._objects.get(key)
            if current is None:
                raise not_found(kind, key[3])
            if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
                raise conflict(kind, key[3])
            causes = metadata_problems(obj)
            if causes:
                raise invalid(kind, key[3], causes)
            meta = obj["metadata"]
            for kept in ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp"):
                if kept in current["metadata"]:
                    meta[kept] = current["metadata"][kept]
                else:
                    meta.pop(kept, None)
            if obj == current:
                return copy.deepcopy(current)
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                return self._remove(key)  # the last finalizer is gone: the held deletion completes
            if obj.get("spec") != current.get("spec"):
                meta["generation"] = current["metadata"].get("generation", 1) + 1
            meta["resourceVersion"] = self._next_rv()
            self._objects[key] = obj
            self._record("MODIFIED", obj)
            return copy.deepcopy(obj)

    def mutate(self, api_version: str, kind: str, namespace: str | None, name: str, change: Callable[[Obj], Any]) -> Obj:
        """Atomic read-modify-write: `change` edits a copy in place; written only if it differs."""
        with self._lock:
            obj = self.get(api_version, kind, namespace, name)
            change(obj)
            return self.update(obj)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj:
        with self._lock:
            key = (api_version, kind, namespace or "", name)
            if key not in self._objects:
                raise not_found(kind_of(api_version, kind), name)
            if (api_version, kind) == ("v1", "Namespace"):
                for other in [k for k in self._objects if k[2] == name]:
                    self.delete(other[0], other[1], other[2], other[3])
            if self._objects[key]["metadata"].get("finalizers"):
                # As the API server does: a finalizer holds the object, marked for deletion, until its
                # controller removes it.
                held = copy.deepcopy(self._objects[key])
                if not held["metadata"].get("deletionTimestamp"):
                    held["metadata"].update(deletionTimestamp=now_iso(), resourceVersion=self._next_rv())
                    self._objects[key] = held
                    self._record("MODIFIED", held)
                return copy.deepcopy(held)
            return self._remove(key)

    def _remove(self, key: Key) -> Obj:
        obj = copy.deepcopy(self._objects.pop(key))
        obj["metadata"]["resourceVersion"] = self._next_rv()
        obj["metadata"].setdefault("deletionTimestamp", now_iso())
        self._record("DELETED", obj)
        return copy.deepcopy(obj)

    def wait_for_change(self, since_rv: int, timeout: float) -> int:
        """Block until the store moves past `since_rv`, it closes, or `timeout` passes."""
        with self._lock:
            self._changed.wait_for(lambda: self._rv > since_rv or self._closed, timeout)
            return self._rv

    def watch(self, since_rv: int | None, match: Callable[[Obj], bool], timeout: float) -> Iterator[tuple[str, Obj]]:
        """Yield (type, object) events. Without `since_rv`, first an ADDED event per current match.

        Raises Gone (before yielding) when `since_rv` predates the retained history.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            if since_rv is None:
                initial = [("ADDED", copy.deepcopy(o)) for o in self._objects.values() if match(o)]
                position = self._rv
            else:
                oldest = self._events[0][0] if self._events else self._rv + 1
                if since_rv < oldest - 1 and since_rv < self._rv:
                    raise Gone(f"too old resource version: {since_rv} ({oldest - 1})")
                initial, position = [], since_rv
        yield from initial
        while True:
            with self._lock:
                self._changed.wait_for(
                    lambda: self._rv > position or self._closed, max(0.0, deadline - time.monotonic())
                )
                if self._closed or time.monotonic() >= deadline:
                    return
                batch = [(event, obj) for rv, event, obj in self._events if rv > position and match(obj)]
                position = self._rv
            for event, obj in batch:
                yield event, copy.deepcopy(obj)
