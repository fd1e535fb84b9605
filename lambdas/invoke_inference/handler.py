"""InvokeInference: the study's tensor to Triton (KServe v2, binary tensors) at INFERENCE_ENDPOINT,
verified over TLS against INFERENCE_CA_PEM, both of which phase 4 sets. Until then it raises InferenceNotWired, which ends the study in StoreFailure;
an unreachable or busy server raises InferenceUnavailable, which the state machine retries."""

from __future__ import annotations

import os
import time
from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.inference_call import infer
from radstream.pipeline.preprocess import decode_tensor

# Leave this much of the function's time to report a failure rather than be killed mid-retry.
_RESERVE_S = 2.0


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings = support.timings_of(event)
    with support.stage_timer(timings, "inference"):
        endpoint = os.environ.get("INFERENCE_ENDPOINT", "")
        bucket, key = support.split_s3_path(event["tensor"]["s3_path"])
        tensor = decode_tensor(support.read_object(bucket, key))
        deadline = None
        if context is not None and hasattr(context, "get_remaining_time_in_millis"):
            deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - _RESERVE_S
        outcome = infer(tensor, endpoint=endpoint, model=support.setting("MODEL_NAME"), deadline=deadline,
                        ca_pem=os.environ.get("INFERENCE_CA_PEM") or None)
    return {**event, "inference_results": outcome.to_dict(), "processing_time_ms": timings}
