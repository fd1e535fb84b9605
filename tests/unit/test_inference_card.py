"""The served model's card travels from the repository's config.pbtxt, through Triton's config
endpoint, into what the invoke Lambda returns (radstream.pipeline.inference_call)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import json_format

from radstream.inference.repository import build_repository, import_model, read_config
from tests.unit.test_model_repository import MODEL, THREE, labels_file, tiny_model


def _serve(config: dict) -> ThreadingHTTPServer:
    """A loopback stand-in for Triton's HTTP API: its model config, and one classification per label."""
    class Handler(BaseHTTPRequestHandler):
        def _answer(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(config)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            entries = [f"0.5:{i}:{label}" for i, label in enumerate(THREE)]
            self._answer({"model_name": MODEL, "model_version": "2",
                          "outputs": [{"name": config["output"][0]["name"], "data": entries}]})

        def log_message(self, *_) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _served_outcome(repo: Path):
    from radstream.pipeline.inference_call import infer

    # Triton's HTTP config endpoint answers with the protobuf's JSON form of config.pbtxt.
    config = json_format.MessageToDict(read_config(repo / MODEL), preserving_proto_field_name=True)
    server = _serve(config)
    try:
        return infer(np.zeros((1, 224, 224), np.uint8), endpoint=f"http://127.0.0.1:{server.server_address[1]}",
                     model=MODEL, retries=0)
    finally:
        server.shutdown()


@pytest.mark.parametrize(("trained", "trained_on"), [(True, "NIH ChestX-ray14"), (False, None)])
def test_the_imported_model_card_is_what_inference_reports(tmp_path: Path, trained: bool, trained_on: str | None):
    build_repository(tmp_path / "repo")
    import_model(tiny_model(tmp_path / "m.onnx"), labels_file(tmp_path / "l.txt", THREE), tmp_path / "repo",
                 trained=trained, trained_on=trained_on, licence="CC-BY-4.0")
    outcome = _served_outcome(tmp_path / "repo")
    assert (outcome.model_trained, outcome.model_trained_on, outcome.model_licence) == (trained, trained_on, "CC-BY-4.0")
    assert set(outcome.probabilities) == set(THREE)
