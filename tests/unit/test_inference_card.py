"""The served model's card and model file digest travel from the repository's config.pbtxt, through
Triton's metadata and config endpoints, into what the invoke Lambda returns
(radstream.pipeline.inference_call), and follow a rollout to another version."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from google.protobuf import json_format

from radstream.inference.repository import LABELS_FILE, build_repository, import_model, read_config, read_labels, versions
from radstream.pipeline.errors import InferenceUnavailable, InvalidModelOutput
from radstream.pipeline.inference_call import infer
from tests.unit.test_model_repository import MODEL, THREE, labels_file, sha, tiny_model

TENSOR = np.zeros((1, 224, 224), np.uint8)


def _snapshot(model_dir: Path) -> dict[str, Any]:
    """What Triton serves from a repository: its newest version, that version's config (in the JSON
    form of the protobuf, as Triton's HTTP config endpoint answers) and its labels."""
    return {"version": str(versions(model_dir)[-1]), "labels": read_labels(model_dir / LABELS_FILE),
            "config": json_format.MessageToDict(read_config(model_dir), preserving_proto_field_name=True)}


def _serve(served: dict[str, Any]) -> ThreadingHTTPServer:
    """A loopback stand-in for Triton's HTTP API serving `served`, which a test may update in place
    as a rollout would: the model's metadata, the served version's config, one classification per
    label; a request naming other tensors is refused, as Triton does. `served["answered_version"]`,
    when set, is the version inference answers as, `served["refusal"]` refuses every inference;
    every request's path is appended to `served["requests"]`."""
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict, status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            served.setdefault("requests", []).append(self.path)
            version = served["version"]
            if self.path == f"/v2/models/{MODEL}":
                self._answer({"name": MODEL, "versions": [version], "platform": "onnxruntime_onnx"})
            elif self.path in (f"/v2/models/{MODEL}/config", f"/v2/models/{MODEL}/versions/{version}/config"):
                self._answer(served["config"])
            else:
                self._answer({"error": f"Request for unknown model: '{MODEL}' version is not found"}, 400)

        def do_POST(self) -> None:
            served.setdefault("requests", []).append(self.path)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            header = json.loads(body[:int(self.headers["Inference-Header-Content-Length"])])
            config = served["config"]
            asked = (header["inputs"][0]["name"], header["outputs"][0]["name"])
            if served.get("refusal") or asked != (config["input"][0]["name"], config["output"][0]["name"]):
                self._answer({"error": served.get("refusal") or f"unexpected inference output '{asked[1]}'"}, 400)
                return
            entries = [f"0.5:{i}:{label}" for i, label in enumerate(served["labels"])]
            self._answer({"model_name": MODEL, "model_version": served.get("answered_version", served["version"]),
                          "outputs": [{"name": served["config"]["output"][0]["name"], "data": entries}]})

        def log_message(self, *_) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _endpoint(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _stop(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


def _import_trained(repo: Path, tmp_path: Path, trained: bool = True, trained_on: str | None = "NIH ChestX-ray14",
                    output: str | None = None) -> None:
    """Import a 3-label model; `output` renames its output tensor (the tiny model's is 'probs')."""
    path = tiny_model(tmp_path / "m.onnx")
    if output:
        model = onnx.load(str(path))
        for node in model.graph.node:
            node.output[:] = [output if name == "probs" else name for name in node.output]
        model.graph.output[0].name = output
        onnx.save(model, str(path))
    import_model(path, labels_file(tmp_path / "l.txt", THREE), repo, trained=trained, trained_on=trained_on,
                 licence="CC-BY-4.0")


@pytest.mark.parametrize(("trained", "trained_on"), [(True, "NIH ChestX-ray14"), (False, None)])
def test_the_imported_model_card_is_what_inference_reports(tmp_path: Path, trained: bool, trained_on: str | None):
    build_repository(tmp_path / "repo")
    _import_trained(tmp_path / "repo", tmp_path, trained, trained_on)
    server = _serve(_snapshot(tmp_path / "repo" / MODEL))
    try:
        outcome = infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=0)
    finally:
        _stop(server)
    assert (outcome.model_trained, outcome.model_trained_on, outcome.model_licence) == (trained, trained_on, "CC-BY-4.0")
    assert outcome.model_version == "2" and outcome.model_sha256 == sha(tmp_path / "repo" / MODEL / "2" / "model.onnx")
    assert set(outcome.probabilities) == set(THREE)


# Version 2 keeps version 1's tensor names (its answers tell the version apart), or renames its
# output (Triton refuses requests naming the old one).
@pytest.mark.parametrize("output", ["probabilities", None])
def test_a_warm_container_reports_the_card_and_digest_of_the_version_served_after_a_rollout(tmp_path: Path,
                                                                                             output: str | None):
    repo = tmp_path / "repo"
    build_repository(repo)
    served = _snapshot(repo / MODEL)
    server = _serve(served)
    try:
        before = infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=1, backoff=0.01)
        _import_trained(repo, tmp_path, output=output)
        served.update(_snapshot(repo / MODEL))  # the same endpoint now serves version 2, with 3 labels
        after = infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=1, backoff=0.01)
    finally:
        _stop(server)
    assert (before.model_version, before.model_sha256, before.model_trained, before.model_licence) == (
        "1", sha(repo / MODEL / "1" / "model.onnx"), False, "Apache-2.0")
    assert (after.model_version, after.model_sha256, after.model_trained, after.model_trained_on, after.model_licence) == (
        "2", sha(repo / MODEL / "2" / "model.onnx"), True, "NIH ChestX-ray14", "CC-BY-4.0")
    assert set(after.probabilities) == set(THREE)


def test_answers_from_another_version_than_the_config_describes_are_never_reported(tmp_path: Path):
    build_repository(tmp_path / "repo")
    served = {**_snapshot(tmp_path / "repo" / MODEL), "answered_version": "2"}
    server = _serve(served)
    try:
        with pytest.raises(InferenceUnavailable, match="answered as version 2, not the version 1"):
            infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=1, backoff=0.01)
    finally:
        _stop(server)
    # Each attempt read the metadata and the config again: the mismatch dropped the cached ones.
    metadata, config = f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/1/config"
    assert [path for path in served["requests"] if not path.endswith("/infer")] == [metadata, config] * 2


def test_a_refusal_is_retried_only_when_the_config_was_read_by_an_earlier_call(tmp_path: Path):
    build_repository(tmp_path / "repo")
    served = _snapshot(tmp_path / "repo" / MODEL)
    server = _serve(served)
    try:
        infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=1, backoff=0.01)
        served.update(refusal="input 'image' has an unexpected shape", requests=[])
        with pytest.raises(InvalidModelOutput, match="unexpected shape"):
            infer(TENSOR, endpoint=_endpoint(server), model=MODEL, retries=1, backoff=0.01)
    finally:
        _stop(server)
    # Refused with the cached config: read again and retried; refused with a fresh one: raised.
    metadata, config, request = f"/v2/models/{MODEL}", f"/v2/models/{MODEL}/versions/1/config", f"/v2/models/{MODEL}/infer"
    assert served["requests"] == [request, metadata, config, request]
