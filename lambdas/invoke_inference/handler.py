"""InvokeInference: never pretends. Until phase 4 wires INFERENCE_ENDPOINT (and the pipeline issue
adds the Triton client) it fails with the error type NotWired, which the state machine catches."""

from __future__ import annotations

import os
from typing import Any


class NotWired(Exception):
    """No inference endpoint is connected to this function yet."""


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    endpoint = os.environ.get("INFERENCE_ENDPOINT")
    if not endpoint:
        raise NotWired("INFERENCE_ENDPOINT is not set: run phase 4 (radstream phase run 4) to wire inference")
    raise NotWired(f"endpoint {endpoint} is set but this handler has no inference client yet")
