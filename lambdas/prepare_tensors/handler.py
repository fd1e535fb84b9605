"""PrepareImage: passes the study through until radstream.pipeline's preprocessing lands."""

from __future__ import annotations

from typing import Any


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    return dict(event)
