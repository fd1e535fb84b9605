"""A real tritonserver (bundled with nvidia-pytriton) serving the default model, queried like a user would."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Iterator

import numpy as np
import onnxruntime as ort
import pytest

from radstream.inference.client import TritonClient, TritonError
from radstream.inference.repository import build_repository
from radstream.inference.triton_local import LocalTriton
from tests.integration.sandbox_fixtures import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("pytriton") is None, reason="nvidia-pytriton is not installed"),
]

MODEL = "radstream_cxr"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model_repo")
    build_repository(root)
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTriton]:
    triton = LocalTriton(repo, tmp_path_factory.mktemp("triton"))
    try:
        triton.start()
        yield triton
    finally:
        triton.stop()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    batch = np.random.default_rng(7).integers(0, 256, (11, 1, 224, 224), dtype=np.uint8)
    batch[0] = 0
    return batch


@pytest.fixture(scope="module")
def expected(repo: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(repo / MODEL / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": images})[0]


def test_endpoints_are_on_loopback(server: LocalTriton) -> None:
    assert server.endpoints["triton_http"].startswith("http://127.0.0.1:")
    assert server.endpoints["triton_grpc"].startswith("127.0.0.1:")


def test_plain_tritonclient_http_binary_matches_onnxruntime(server: LocalTriton, images: np.ndarray, expected: np.ndarray) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.endpoints["triton_http"].removeprefix("http://"))
    try:
        assert client.is_model_ready(MODEL)
        tensor = httpclient.InferInput("image", [4, 1, 224, 224], "UINT8")
        tensor.set_data_from_numpy(images[:4], binary_data=True)
        result = client.infer(MODEL, [tensor], outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=True)])
    finally:
        client.close()
    probs = result.as_numpy("probabilities")
    assert probs.shape == (4, 14)
    np.testing.assert_allclose(probs, expected[:4], atol=1e-5, rtol=0)


def test_plain_tritonclient_grpc_matches_onnxruntime(server: LocalTriton, images: np.ndarray, expected: np.ndarray) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.endpoints["triton_grpc"])
    try:
        tensor = grpcclient.InferInput("image", [1, 1, 224, 224], "UINT8")
        tensor.set_data_from_numpy(images[5:6])
        result = client.infer(MODEL, [tensor], outputs=[grpcclient.InferRequestedOutput("probabilities")])
    finally:
        client.close()
    probs = result.as_numpy("probabilities")
    assert probs.shape == (1, 14)
    np.testing.assert_allclose(probs, expected[5:6], atol=1e-5, rtol=0)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_radstream_client_batches_beyond_max_batch_size(server: LocalTriton, protocol: str, images: np.ndarray, expected: np.ndarray) -> None:
    url = server.endpoints["triton_http" if protocol == "http" else "triton_grpc"]
    with TritonClient(url, protocol) as client:
        assert client.is_live() and client.is_ready() and client.is_model_ready()
        meta = client.metadata()
        assert meta["inputs"][0]["datatype"] == "UINT8" and meta["outputs"][0]["shape"] == [-1, 14]
        assert client.signature() == ("image", "probabilities", 8)
        probs = client.infer(images)  # 11 images: sent as 8 + 3
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)


def test_client_errors_name_the_server_and_what_to_check(server: LocalTriton, images: np.ndarray) -> None:
    with TritonClient(server.endpoints["triton_http"], "http", model="no_such_model") as client:
        with pytest.raises(TritonError, match="no_such_model") as err:
            client.infer(images[:1])
    assert server.endpoints["triton_http"] in str(err.value)
    with TritonClient(server.endpoints["triton_grpc"], "grpc") as client:
        with pytest.raises(Exception, match=r"uint8 \[N,1,224,224\]"):
            client.infer(images.astype(np.float32))


def test_unreachable_server_is_retried_then_explained() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but never listening: connections are refused
        with TritonClient(f"http://127.0.0.1:{port}", "http", retries=1, backoff=0.01) as client:
            with pytest.raises(TritonError, match=f"127.0.0.1:{port}.*unreachable or unavailable after 2 attempts"):
                client.is_live()


def test_server_without_dynamic_batching_stops_cleanly(repo: Path, tmp_path: Path, images: np.ndarray, expected: np.ndarray) -> None:
    with LocalTriton(repo, tmp_path, dynamic_batching=False) as triton:
        process = triton.process
        http = triton.endpoints["triton_http"]
        with TritonClient(http, "http") as client:
            assert "dynamic_batching" not in client.config()
            np.testing.assert_allclose(client.infer(images[:2]), expected[:2], atol=1e-5, rtol=0)
    assert process is not None and process.poll() is not None
    port = int(http.rsplit(":", 1)[1])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert "successfully loaded 'radstream_cxr'" in triton.log_path.read_text()


def live_in_group(group: int) -> list[int]:
    """Processes of a process group that still run (a killed orphan may linger as a zombie)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_stop_ends_triton_and_its_stubs_and_frees_their_shared_memory(repo: Path, tmp_path: Path) -> None:
    triton = LocalTriton(repo, tmp_path / "triton")
    triton.start()
    group = triton.process.pid
    regions = list(Path("/dev/shm").glob(f"{triton.shm_prefix}*"))
    assert regions and len(live_in_group(group)) > 1  # the python backend's stubs, with their memory
    triton.stop()
    assert [r for r in regions if r.exists()] == []
    # SIGKILL is delivered, not awaited: the stubs may take a moment to be gone.
    wait_for(lambda: live_in_group(group) == [], timeout=10, what=f"process group {group} gone")


def test_a_model_reloaded_with_another_configuration_serves_it_until_reloaded_again(server: LocalTriton, images: np.ndarray,
                                                                                    expected: np.ndarray) -> None:
    """What `radstream ab batch` does: Triton's model-control API swaps the configuration in place."""
    from radstream.bench.ab import batch_config

    with TritonClient(server.endpoints["triton_http"]) as client:
        original = client.config()
        client.load(batch_config(original, 1, 0))
        assert client.config()["max_batch_size"] == 1 and "dynamic_batching" not in client.config()
        np.testing.assert_allclose(client.infer(images[:2]), expected[:2], rtol=1e-5, atol=1e-6)
        client.load()  # without a configuration: Triton keeps the last one while the repository is unchanged
        assert client.config()["max_batch_size"] == 1
        client.load(original)
        assert client.config() == original


def test_bench_inference_at_a_tiny_size_names_what_each_triton_runs(repo: Path, tmp_path: Path) -> None:
    from radstream.bench.inference import run

    result = run(repo, seconds=0.2, concurrencies=(1,))
    modes = {(r["mode"], r["protocol"], r["dynamic_batching"]) for r in result["rows"]}
    assert modes == {("onnxruntime", "in-process", None), ("triton", "http", True), ("triton", "grpc", True),
                     ("triton", "http", False), ("triton", "grpc", False)}
    assert all(r["images"] > 0 and r["ratio"] is not None for r in result["rows"])
    eks, sandbox = result["serving"]["eks_image"], result["serving"]["sandbox"]
    assert (eks["platform"], eks["backend"]) == ("onnxruntime_onnx", None)
    assert (sandbox["platform"], sandbox["backend"]) == (None, "python")
    assert eks["dynamic_batching"] == sandbox["dynamic_batching"] and eks["instance_groups"] == sandbox["instance_groups"]
