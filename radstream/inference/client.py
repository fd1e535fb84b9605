"""Talk to Triton (KServe v2) over HTTP or gRPC, always with binary tensors.

JSON tensors are 30-50 times slower for an image, so they are never used. Large inputs are split into
chunks of the model's max batch size; connection failures and 503s are retried with backoff; every
error names the URL and what to check.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from radstream.errors import RadstreamError
from radstream.inference.model import IMAGE_SIZE, MODEL_NAME

T = TypeVar("T")
# Statuses that mean "not now" rather than "never": worth another try.
_RETRYABLE_STATUS = {"502", "503", "504", "StatusCode.UNAVAILABLE"}


class TritonError(RadstreamError):
    """Triton could not be reached or refused a request."""


def _retryable(exc: Exception) -> bool:
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, InferenceServerException):
        return str(exc.status()) in _RETRYABLE_STATUS
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


class TritonClient:
    """One connection to one Triton server and model. Not shared between threads (make one per thread)."""

    def __init__(
        self,
        url: str,
        protocol: str = "http",
        model: str = MODEL_NAME,
        timeout: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        ca_file: str | None = None,
    ):
        if protocol not in ("http", "grpc"):
            raise RadstreamError(f"unknown Triton protocol {protocol!r}.", "Use 'http' or 'grpc'.")
        self.url = url
        self.protocol = protocol
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.ca_file = ca_file  # over HTTPS: the CA the server's certificate must chain to (None: the system's)
        self._client: Any = None
        self._signature: tuple[str, str, int] | None = None

    # -- connection ---------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            address = self.url.split("://", 1)[-1].rstrip("/")
            secure = self.url.startswith(("https://", "grpcs://"))
            if self.protocol == "http":
                import gevent.ssl
                import tritonclient.http as httpclient

                # Without a context factory tritonclient wraps sockets bare: no certificate check at all.
                self._client = httpclient.InferenceServerClient(
                    address, connection_timeout=self.timeout, network_timeout=self.timeout, ssl=secure,
                    ssl_options={"ca_certs": self.ca_file} if self.ca_file else None,
                    ssl_context_factory=gevent.ssl.create_default_context,
                )
            else:
                import tritonclient.grpc as grpcclient

                self._client = grpcclient.InferenceServerClient(address, ssl=secure, root_certificates=self.ca_file)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> TritonClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one client call, retrying transient failures, and explain the final one."""
        from tritonclient.utils import InferenceServerException

        for attempt in range(self.retries + 1):
            try:
                return fn()
            except Exception as exc:
                if not isinstance(exc, (InferenceServerException, OSError)):
                    raise
                if _retryable(exc) and attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                raise self._explain(what, exc) from exc
        raise AssertionError("unreachable")

    def _explain(self, what: str, exc: Exception) -> TritonError:
        where = f"Triton at {self.url} ({self.protocol})"
        if _retryable(exc):
            return TritonError(
                f"{what} failed: {where} is unreachable or unavailable after {self.retries + 1} attempts ({exc}).",
                "Check the server is running (`radstream sandbox status` or `radstream status`) and the URL and port are right.",
            )
        return TritonError(
            f"{what} failed at {where}: {exc}",
            f"Check that model '{self.model}' is loaded (`radstream model build`, then restart the server) and the input is uint8 [N,1,{IMAGE_SIZE},{IMAGE_SIZE}].",
        )

    # -- health and metadata ------------------------------------------------------------------

    def is_live(self) -> bool:
        return bool(self._call("liveness check", self.client.is_server_live))

    def is_ready(self) -> bool:
        return bool(self._call("readiness check", self.client.is_server_ready))

    def is_model_ready(self) -> bool:
        return bool(self._call(f"model '{self.model}' readiness check", lambda: self.client.is_model_ready(self.model)))

    def metadata(self) -> dict[str, Any]:
        """Model name, versions, inputs and outputs; the same types over either protocol."""
        if self.protocol == "http":
            return self._call("model metadata", lambda: self.client.get_model_metadata(self.model))
        meta = self._call("model metadata", lambda: self.client.get_model_metadata(self.model, as_json=True))
        # protobuf's JSON form spells int64 as strings
        for tensor in meta.get("inputs", []) + meta.get("outputs", []):
            tensor["shape"] = [int(d) for d in tensor.get("shape", [])]
        return meta

    def config(self) -> dict[str, Any]:
        if self.protocol == "http":
            return self._call("model config", lambda: self.client.get_model_config(self.model))
        return self._call("model config", lambda: self.client.get_model_config(self.model, as_json=True))["config"]

    def load(self, config: dict[str, Any] | None = None) -> None:
        """(Re)load the model: with `config` (its JSON form) in place of its repository's config.pbtxt,
        else from the repository. The server must run with explicit model control."""
        import json

        text = json.dumps(config) if config is not None else None
        self._call(f"model '{self.model}' load", lambda: self.client.load_model(self.model, config=text))
        self._signature = None

    def signature(self) -> tuple[str, str, int]:
        """(input name, output name, max batch size), read once from the server."""
        if self._signature is None:
            meta, config = self.metadata(), self.config()
            self._signature = (meta["inputs"][0]["name"], meta["outputs"][0]["name"], int(config.get("max_batch_size") or 0))
        return self._signature

    # -- inference ----------------------------------------------------------------------------

    def infer(self, batch: Any) -> Any:
        """Probabilities [N,K] for a uint8 batch [N,1,224,224], sent in chunks Triton accepts."""
        import numpy as np

        batch = np.ascontiguousarray(batch)
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (1, IMAGE_SIZE, IMAGE_SIZE):
            raise RadstreamError(
                f"inference input must be uint8 [N,1,{IMAGE_SIZE},{IMAGE_SIZE}], got {batch.dtype} {list(batch.shape)}.",
                "Preprocess images with radstream.pipeline first.",
            )
        _, _, max_batch = self.signature()
        step = max_batch if max_batch > 0 else len(batch)
        return np.concatenate([self._infer_chunk(batch[i : i + step]) for i in range(0, len(batch), step)])

    def _infer_chunk(self, chunk: Any) -> Any:
        input_name, output_name, _ = self.signature()
        if self.protocol == "http":
            import tritonclient.http as proto

            tensor = proto.InferInput(input_name, list(chunk.shape), "UINT8")
            tensor.set_data_from_numpy(chunk, binary_data=True)
            wanted = proto.InferRequestedOutput(output_name, binary_data=True)
            send = lambda: self.client.infer(self.model, [tensor], outputs=[wanted])  # noqa: E731
        else:
            import tritonclient.grpc as proto

            tensor = proto.InferInput(input_name, list(chunk.shape), "UINT8")
            tensor.set_data_from_numpy(chunk)
            wanted = proto.InferRequestedOutput(output_name)
            send = lambda: self.client.infer(self.model, [tensor], outputs=[wanted], client_timeout=self.timeout)  # noqa: E731
        return self._call(f"inference on '{self.model}'", send).as_numpy(output_name)
