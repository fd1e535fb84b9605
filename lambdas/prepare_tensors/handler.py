"""PrepareImage: decode the study (DICOM, JPEG or PNG, told by content) from the object version
ValidateInput checked, turn it into the model input uint8 [1, 224, 224] and store it as
tensors/<study_id>/<input ref>.npy in the artifacts bucket (per input, so two objects claiming one id
never swap tensors); the next step reads it from there (Step Functions payloads are too small to
carry pixels)."""

from __future__ import annotations

from typing import Any

from radstream.pipeline import lambda_support as support
from radstream.pipeline.preprocess import encode_tensor, prepare
from radstream.pipeline.results import tensor_key


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    timings = support.timings_of(event)
    with support.stage_timer(timings, "prepare"):
        bucket, key = support.input_location(event)
        data = support.read_object(bucket, key, support.input_version(event))
        prepared = prepare(data, limits=support.input_limits())
        artifacts, tensor = support.setting("ARTIFACTS_BUCKET"), tensor_key(event["study_id"], event["input_ref"])
        support.put_object(artifacts, tensor, encode_tensor(prepared.tensor), "application/x-npy")
    return {
        **event,
        "input_sha256": prepared.input_sha256,
        "tensor": {"s3_path": f"s3://{artifacts}/{tensor}", "shape": list(prepared.tensor.shape)},
        "processing_time_ms": timings,
    }
