"""One study's tensor to Triton and back, for the InvokeInference Lambda. Standard library only, so
the layer stays small.

The request uses the KServe v2 binary tensor extension (the JSON header followed by the raw uint8
bytes; JSON tensors are 30-50 times slower). The output is asked for through Triton's
classification extension, which returns "probability:index:label" for every class, so the labels
come from the model's own label file and cannot drift from the model.

What the model is (tensor names, class count, card, model file digest) is read from the config of
the version Triton's metadata names, and cached per warm container. An answer from another version
(a rollout since) drops the cache and is retried, so no outcome pairs one version's output with
another version's card; so does a refusal of a request made with a cached config, since a rollout
may have renamed the model's tensors.

TLS: an https:// endpoint is verified against `ca_pem`, the deployment's CA (phase 4 sets
INFERENCE_CA_PEM), never the system's store; a certificate from any other CA fails the handshake,
which is retried and then raised as InferenceUnavailable. A plaintext http:// endpoint is refused
unless it is loopback (a tensor on 127.0.0.1 crosses no network): InferenceNotWired, not retried.

Failures worth retrying (no answer, timeouts, 5xx, 429, the model not loaded or not ready yet) are
retried here with exponential backoff and then raised as InferenceUnavailable, which the state
machine retries again; a request the server refuses is InvalidModelOutput and is not retried
(unless made with a cached config, above).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from radstream.pipeline.errors import (
    InferenceNotWired,
    InferenceUnavailable,
    InvalidModelOutput,
)

if TYPE_CHECKING:
    import numpy as np

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.5
# Never start an attempt with less time than this left before the caller's deadline.
_MIN_ATTEMPT_S = 1.0
_ERROR_BODY_LIMIT = 300
# The model config parameters radstream.inference.repository writes from the served version's card
# and model file (DIGEST_PARAMETER: its sha256).
TRAINED_PARAMETER, TRAINED_ON_PARAMETER, LICENCE_PARAMETER = "model_trained", "model_trained_on", "model_licence"
DIGEST_PARAMETER = "model_sha256"


class _Signature(NamedTuple):
    version: str  # the model version this describes
    input_name: str
    output_name: str
    classes: int
    trained: bool  # only "true" counts: a model without a card is reported untrained
    trained_on: str | None
    licence: str | None
    sha256: str | None


# Per container: (endpoint, model) -> what the served version's config says; dropped when an answer
# comes from another version.
_signatures: dict[tuple[str, str], _Signature] = {}


@dataclass(frozen=True)
class InferenceOutcome:
    model_name: str
    model_version: str
    model_trained: bool
    model_trained_on: str | None
    model_licence: str | None
    model_sha256: str | None
    probabilities: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Retryable(Exception):
    """An attempt failed in a way another attempt may not."""


def base_url(endpoint: str | None) -> str:
    """The server's base URL; an empty endpoint means phase 4 has not wired inference yet."""
    endpoint = (endpoint or "").strip()
    if not endpoint:
        raise InferenceNotWired(
            "no inference endpoint is configured (INFERENCE_ENDPOINT is empty): run phase 4 "
            "(`radstream phase run 4`) to wire the pipeline to Triton"
        )
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    endpoint = endpoint.rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https"):
        raise InferenceNotWired(f"the inference endpoint {endpoint} is neither https:// nor http://")
    if parts.scheme == "http" and not _loopback(parts.hostname or ""):
        raise InferenceNotWired(
            f"refusing the plaintext inference endpoint {endpoint}: radiograph tensors must not cross a network "
            "unencrypted; run phase 3 and 4 again (`radstream up`) to wire the https:// endpoint")
    return endpoint


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Verifies the server's certificate and name against `ca_pem` only (None: the system's CAs)."""
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def infer(
    tensor: np.ndarray,
    *,
    endpoint: str | None,
    model: str,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF_S,
    deadline: float | None = None,
    ca_pem: str | None = None,
) -> InferenceOutcome:
    """Probabilities per label for one uint8 [1, H, W] tensor. `deadline` is a time.monotonic()
    value (the Lambda's remaining time) that no attempt or backoff may run past; `ca_pem` is the CA
    an https:// endpoint's certificate must chain to."""
    url = base_url(endpoint)
    context = tls_context(ca_pem) if url.startswith("https://") else None
    batch = tensor[None, ...]
    attempts, last = 0, ""
    while True:
        budget = timeout if deadline is None else min(timeout, deadline - time.monotonic())
        if attempts and budget < _MIN_ATTEMPT_S:
            break
        attempts += 1
        try:
            cached = (url, model) in _signatures
            signature = _signature(url, model, max(budget, _MIN_ATTEMPT_S), context)
            return _infer_once(url, model, batch, signature, max(budget, _MIN_ATTEMPT_S), context, cached)
        except _Retryable as exc:
            last = str(exc)
        pause = backoff * 2 ** (attempts - 1)
        if attempts > retries or (deadline is not None and time.monotonic() + pause + _MIN_ATTEMPT_S > deadline):
            break
        time.sleep(pause)
    raise InferenceUnavailable(f"Triton at {url} did not answer for model '{model}' after {attempts} attempt(s): {last}")


def _signature(url: str, model: str, timeout: float, context: ssl.SSLContext | None) -> _Signature:
    """The served version, its input and output names, class count, card and model digest, read once
    per container (and again after a rollout, see _infer_once)."""
    key = (url, model)
    if key not in _signatures:
        _signatures[key] = _read_signature(url, model, timeout, context)
    return _signatures[key]


def _read_signature(url: str, model: str, timeout: float, context: ssl.SSLContext | None) -> _Signature:
    metadata = _request(f"{url}/v2/models/{model}", None, {}, timeout, context)
    try:
        version = max((str(v) for v in json.loads(metadata)["versions"]), key=int)
    except (KeyError, TypeError, ValueError):
        raise InvalidModelOutput(f"the metadata of model '{model}' at {url} names no version") from None
    # That version's own config: a server already (or still) on another version answers "unknown
    # model", which is retried, rather than another version's config.
    config = json.loads(_request(f"{url}/v2/models/{model}/versions/{version}/config", None, {}, timeout, context))
    try:
        output = config["output"][0]
        classes = int(output["dims"][-1])
        parameters = config.get("parameters") or {}

        def parameter(name: str) -> str | None:
            return str((parameters.get(name) or {}).get("string_value") or "") or None

        return _Signature(version, config["input"][0]["name"], output["name"], classes,
                          (parameter(TRAINED_PARAMETER) or "").lower() == "true",
                          parameter(TRAINED_ON_PARAMETER), parameter(LICENCE_PARAMETER), parameter(DIGEST_PARAMETER))
    except (KeyError, IndexError, TypeError, ValueError):
        raise InvalidModelOutput(f"the config of model '{model}' at {url} has no usable input/output") from None


def _infer_once(url: str, model: str, batch: np.ndarray, signature: _Signature, timeout: float,
                context: ssl.SSLContext | None, cached: bool) -> InferenceOutcome:
    """One request; `cached`: the signature was read by an earlier call, so may predate a rollout."""
    input_name, output_name, classes = signature.input_name, signature.output_name, signature.classes
    data = batch.tobytes()
    header = json.dumps({
        "inputs": [{"name": input_name, "shape": list(batch.shape), "datatype": "UINT8",
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": output_name, "parameters": {"classification": classes, "binary_data": False}}],
    }).encode()
    headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}
    try:
        raw = _request(f"{url}/v2/models/{model}/infer", header + data, headers, timeout, context)
    except InvalidModelOutput as exc:
        if not cached:
            raise
        # A rollout may have renamed the model's tensors since (Triton refuses the old names): read it again.
        _signatures.pop((url, model), None)
        raise _Retryable(str(exc)) from None
    try:
        answer = json.loads(raw)
        version = str(answer.get("model_version", ""))
        if version != signature.version:
            # A rollout since the config was read: its card, digest and outputs may not be this version's.
            _signatures.pop((url, model), None)
            raise _Retryable(f"model '{model}' answered as version {version or '(none)'}, "
                             f"not the version {signature.version} its config was read from")
        output = next(o for o in answer["outputs"] if o["name"] == output_name)
        probabilities = parse_classification(output["data"])
        return InferenceOutcome(str(answer.get("model_name", model)), version, signature.trained, signature.trained_on,
                                signature.licence, signature.sha256, probabilities)
    except (ValueError, KeyError, TypeError, AttributeError, StopIteration):
        raise InvalidModelOutput(f"model '{model}' answered with something other than one classification per label") from None


def parse_classification(entries: list[Any]) -> dict[str, float]:
    """Triton classification strings "0.83:2:Effusion" to {label: probability}."""
    probabilities = {}
    for entry in entries:
        parts = str(entry).split(":", 2)
        if len(parts) != 3 or not parts[2]:
            raise InvalidModelOutput(
                f"the model output {str(entry)[:64]!r} has no label: give the model's output a label_filename"
            )
        probabilities[parts[2]] = float(parts[0])
    return probabilities


def _request(url: str, body: bytes | None, headers: dict[str, str], timeout: float,
             context: ssl.SSLContext | None) -> bytes:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:_ERROR_BODY_LIMIT].decode("utf-8", "replace")
        # 404 / "not ready": the model is (re)loading; 429 and 5xx: the server is busy or broken.
        if exc.code in (404, 429) or exc.code >= 500 or "not at ready state" in detail or "unknown model" in detail:
            raise _Retryable(f"HTTP {exc.code} {detail}") from None
        raise InvalidModelOutput(f"Triton refused the request (HTTP {exc.code}): {detail}") from None
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError) as exc:
        raise _Retryable(f"{type(exc).__name__}: {exc}") from None
