"""Phase 4: wire the pipeline to Triton and prove it with one study.

The endpoint reaches the pipeline through the invoke_inference Lambda's environment (INFERENCE_ENDPOINT),
with the deployment CA's certificate it verifies Triton's TLS certificate against (INFERENCE_CA_PEM:
an ECDSA CA certificate is about 600 bytes, well inside the 4 KB Lambda allows for all variables,
and an environment change needs no new package);
the state machine calls that Lambda by ARN and embeds no endpoint, so its definition stays the one
phase 0 owns (changing it here would make phase 0 see drift and undo it). The proof is a real
study: a generated PNG and its JSON sidecar uploaded under incoming/, the execution EventBridge
starts for it followed to the end, and its results/<study_id>.json read back. A failure is reported
with the stage and error the pipeline recorded — never papered over."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError
from radstream.names import INCOMING_PREFIX
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.aws.runs import Outcome
    from radstream.context import Context

PHASE = 4
ENDPOINT_VARIABLE = "INFERENCE_ENDPOINT"
CA_VARIABLE = "INFERENCE_CA_PEM"

EXECUTION_START_TIMEOUT_S = 120
EXECUTION_TIMEOUT_S = 600
PROBE_SIZE = 256


def _endpoint(ctx: Context) -> str:
    endpoint = ctx.outputs(3).get("endpoint")
    if not endpoint:
        raise RadstreamError("phase 3 has not recorded the Triton endpoint", hint="run phase 3 first (radstream phase run 3)")
    return endpoint


def _wiring(ctx: Context) -> dict[str, str | None]:
    """The invoke Lambda's variables: the endpoint and, for TLS, the CA that signed its certificate."""
    return {ENDPOINT_VARIABLE: _endpoint(ctx), CA_VARIABLE: ctx.outputs(3).get("ca_certificate")}


def _function(ctx: Context) -> str:
    return ctx.names.lambda_function("invoke_inference")


def probe_study_id(endpoint: str) -> str:
    """One probe study per endpoint: a new endpoint gets proven again."""
    return "wiring-probe-" + hashlib.sha256(endpoint.encode()).hexdigest()[:10]


def probe_png() -> bytes:
    """A deterministic 256x256 grey-scale PNG (a diagonal gradient)."""
    import numpy as np
    from PIL import Image

    pixels = (np.add.outer(np.arange(PROBE_SIZE), np.arange(PROBE_SIZE)) // 2).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").save(buffer, format="PNG")
    return buffer.getvalue()


def probe_sidecar(study_id: str) -> bytes:
    return json.dumps({"study_id": study_id, "view": "PA", "timestamp": "2024-01-15T10:00:00Z",
                       "burned_in_annotation": False}).encode()


class InferenceEndpointStep(Step):
    name = "invoke-inference-endpoint"
    description = f"give the invoke_inference Lambda the Triton endpoint ({ENDPOINT_VARIABLE}) and its CA ({CA_VARIABLE})"

    def check(self, ctx: Context) -> bool:
        from radstream.aws.wiring import function_environment

        current = function_environment(ctx.client("lambda"), _function(ctx))
        return all(current.get(k) == v for k, v in _wiring(ctx).items())

    def plan(self, ctx: Context) -> list[Change]:
        ca = f"; {CA_VARIABLE}=<the deployment's CA certificate>" if _wiring(ctx)[CA_VARIABLE] else ""
        return [Change("update", "lambda function", _function(ctx), f"{ENDPOINT_VARIABLE}={_endpoint(ctx)}{ca}")]

    def apply(self, ctx: Context) -> None:
        from radstream.aws.wiring import set_function_environment

        set_function_environment(ctx.client("lambda"), _function(ctx), _wiring(ctx))

    def outputs(self, ctx: Context) -> dict[str, Any]:
        return {"wired_endpoint": _endpoint(ctx)}

    def verify(self, ctx: Context) -> None:
        if not self.check(ctx):
            raise VerifyFailed(f"{_function(ctx)} does not carry {ENDPOINT_VARIABLE}")

    def destroy(self, ctx: Context) -> None:
        from radstream.aws import error_code
        from radstream.aws.wiring import set_function_environment

        try:
            set_function_environment(ctx.client("lambda"), _function(ctx), {ENDPOINT_VARIABLE: None, CA_VARIABLE: None})
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                raise


class TestExecutionStep(Step):
    name = "test-execution"
    description = "upload one study, follow its execution and read its result"

    def _keys(self, ctx: Context) -> tuple[str, str]:
        study = probe_study_id(_endpoint(ctx))
        return study, f"{INCOMING_PREFIX}{study}.png"

    @staticmethod
    def _outcome(ctx: Context, study: str) -> Outcome | None:
        """The probe study's newest result or failure (each upload files its own)."""
        from radstream.aws.runs import landed

        return landed(ctx.client("s3"), ctx.names.bucket("results"), [f"{study}/"]).get(study)

    def check(self, ctx: Context) -> bool:
        outcome = self._outcome(ctx, self._keys(ctx)[0])
        return outcome is not None and outcome.kind == "result"

    def plan(self, ctx: Context) -> list[Change]:
        study, image = self._keys(ctx)
        return [Change("run", "pipeline execution", study, f"upload s3://{ctx.names.bucket('images')}/{image}")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.runs import upload
        from radstream.aws.stepfunctions import execution_ended
        from radstream.aws.wiring import find_execution

        s3, sfn = ctx.client("s3"), ctx.client("stepfunctions")
        study, image_key = self._keys(ctx)
        images, results = ctx.names.bucket("images"), ctx.names.bucket("results")
        state_machine = ctx.outputs(0).get("state_machine_arn") or self._state_machine_arn(ctx)
        # Clocks of this machine and the service may differ a little.
        since = datetime.now(timezone.utc) - timedelta(seconds=30)
        # The sidecar first: the image's upload is what starts the pipeline.
        upload(s3, images, [(f"{INCOMING_PREFIX}{study}.json", probe_sidecar(study), "application/json"),
                            (image_key, probe_png(), "image/png")])

        def started() -> str | None:
            return find_execution(sfn, state_machine, since, lambda event: self._is_for(event, images, image_key))

        arn = ctx.wait(f"the execution for s3://{images}/{image_key}", started, timeout=EXECUTION_START_TIMEOUT_S,
                       interval=2.0)
        ended = ctx.wait(f"execution {arn.rsplit(':', 1)[-1]}",
                         lambda: execution_ended(sfn, arn),
                         timeout=EXECUTION_TIMEOUT_S, interval=1.0)
        if ended["status"] != "SUCCEEDED":
            raise RadstreamError(f"the test execution ended {ended['status']}: {self._why(ctx, study, ended)}",
                                 hint="fix the failing stage, then run phase 4 again")
        outcome = self._outcome(ctx, study)
        result_key = outcome.key if outcome and outcome.kind == "result" else f"results/{study}/"
        document = self._result(ctx, results, result_key)
        ctx.log(f"study {study}: {len(document.get('findings') or [])} findings in s3://{results}/{result_key}")
        return {"test_execution_arn": arn}

    def outputs(self, ctx: Context) -> dict[str, Any]:
        outcome = self._outcome(ctx, self._keys(ctx)[0])
        return {"test_result": f"s3://{ctx.names.bucket('results')}/{outcome.key}" if outcome else None}

    @staticmethod
    def _is_for(event: dict[str, Any], bucket: str, key: str) -> bool:
        detail = event.get("detail") or {}
        return (detail.get("bucket") or {}).get("name") == bucket and (detail.get("object") or {}).get("key") == key

    @staticmethod
    def _state_machine_arn(ctx: Context) -> str:
        from radstream.aws.stepfunctions import state_machine_arn

        return state_machine_arn(ctx.names.region, ctx.names.account_id, ctx.names.state_machine, ctx.names.partition)

    def _why(self, ctx: Context, study: str, execution: dict[str, Any]) -> str:
        """The pipeline's own failure record when there is one, else the execution's error."""
        from radstream.aws.wiring import read_json

        outcome = self._outcome(ctx, study)
        reason = read_json(ctx.client("s3"), ctx.names.bucket("results"), outcome.key) if outcome and outcome.kind == "failure" else None
        if outcome and reason:
            return (f"stage {reason.get('stage')}: {reason.get('error_type')}: {reason.get('message')} "
                    f"(s3://{ctx.names.bucket('results')}/{outcome.key})")
        return f"{execution.get('error', 'unknown error')}: {execution.get('cause', '')}".rstrip(": ")

    def _result(self, ctx: Context, bucket: str, key: str) -> dict[str, Any]:
        from radstream.aws.wiring import read_json

        document = read_json(ctx.client("s3"), bucket, key)
        if document is None:
            raise RadstreamError(f"the test execution succeeded but wrote no s3://{bucket}/{key}",
                                 hint="the store_results Lambda must write results/<study_id>/<input ref>.json")
        if not document.get("findings"):
            raise VerifyFailed(f"s3://{bucket}/{key} holds no findings")
        return document

    def destroy(self, ctx: Context) -> None:
        """Remove the probe study's objects (the buckets themselves belong to phase 0)."""
        from radstream.aws.runs import FAILED_PREFIX, RESULTS_PREFIX, delete_prefixes
        from radstream.aws.s3 import delete_object

        endpoint = ctx.outputs(3).get("endpoint")
        if not endpoint:
            return
        s3, study = ctx.client("s3"), probe_study_id(endpoint)
        for bucket, key in ((ctx.names.bucket("images"), f"{INCOMING_PREFIX}{study}.png"),
                            (ctx.names.bucket("images"), f"{INCOMING_PREFIX}{study}.json")):
            delete_object(s3, bucket, key)
        delete_prefixes(s3, ctx.names.bucket("results"), [f"{RESULTS_PREFIX}{study}/", f"{FAILED_PREFIX}{study}/"])


class WiringPhase(Phase):
    number = PHASE
    name = "wiring"
    summary = "point InvokeInference at the endpoint, run one study through the pipeline"

    def steps(self, ctx: Context) -> list[Step]:
        return [InferenceEndpointStep(), TestExecutionStep()]
