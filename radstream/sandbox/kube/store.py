"""In-memory object store of the Kubernetes API emulator.

Objects are plain JSON dicts keyed by (apiVersion, kind, namespace, name). The store owns what every
object gets from a real API server regardless of its kind: uid, a global resourceVersion counter,
creationTimestamp, generation (bumped when `spec` changes), metadata validation, selection by label
and field, and the event history that watches replay. Kind-specific behaviour lives in api.py and
admission.py.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from radstream.sandbox.kube.errors import already_exists, conflict, invalid, not_found
from radstream.sandbox.kube.kinds import Key, Obj, kind_of
from radstream.sandbox.kube.metadata import metadata_problems, now_iso, random_suffix
from radstream.sandbox.kube.selectors import FieldRequirement, Requirement, fields_match, labels_match


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
                    lambda position=position: self._rv > position or self._closed, max(0.0, deadline - time.monotonic())
                )
                if self._closed or time.monotonic() >= deadline:
                    return
                batch = [(event, obj) for rv, event, obj in self._events if rv > position and match(obj)]
                position = self._rv
            for event, obj in batch:
                yield event, copy.deepcopy(obj)
