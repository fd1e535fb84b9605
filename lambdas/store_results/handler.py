"""StoreResults: writes the study's inference results to results/<study_id>.json."""

from __future__ import annotations

import json
import os
from typing import Any


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    import boto3

    bucket = os.environ["RESULTS_BUCKET"]
    key = f"results/{event['study_id']}.json"
    body = {k: event.get(k) for k in ("study_id", "s3_path", "metadata", "inference_results", "processing_time_ms")}
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(),
                                  ContentType="application/json")
    return {**event, "results_s3_path": f"s3://{bucket}/{key}"}
