"""API failures as the real server words them, rendered as Kubernetes Status objects."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from radstream.sandbox.kube.kinds import Kind, Obj


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


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)
