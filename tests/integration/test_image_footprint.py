"""An image the nodes cannot hold is refused before anything changes.

A fixture registry on 127.0.0.1 serves what nvcr.io serves for the stock Triton image: an OCI index
whose linux/amd64 manifest lists realistic compressed layer sizes (~7.6 GB in all; ~15.5 GB
unpacked). `plan` shows the refusal as phase 2's failure and `up` stops before phase 0 changes
anything when nodegroup.disk_gib is EKS's default 20 GiB; the default disk holds the image."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.inference.footprint import disk_problem, read_footprint
from radstream.phases.p2_triton import TritonPhase
from radstream.state import State
from tests.integration.sandbox_fixtures import loopback_moto
from tests.support.marker_phase import MarkerPhase

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REPOSITORY, TAG = "nvidia/tritonserver", "24.08-py3"
# Compressed sizes of the kind the stock image has: Ubuntu, CUDA, cuDNN, TensorRT, the backends.
AMD64_LAYERS = [29_540_000, 1_210_000_000, 2_380_000_000, 1_090_000_000, 1_640_000_000, 712_000_000,
                402_000_000, 96_500_000, 31_200_000, 8_400_000, 1_900_000, 26_000]
ARM64_LAYERS = [27_200_000, 310_000_000]  # would fit anywhere: the amd64 one must be read


def _manifest(sizes: list[int]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 31_000,
                   "digest": "sha256:" + "c" * 64},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": size,
                    "digest": "sha256:" + hashlib.sha256(str(size).encode()).hexdigest()} for size in sizes],
    }).encode()


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class FixtureRegistry:
    """Serves one tag as an index of two platform manifests, anonymously, over plain HTTP."""

    def __init__(self) -> None:
        manifests = {arch: _manifest(sizes) for arch, sizes in (("amd64", AMD64_LAYERS), ("arm64", ARM64_LAYERS))}
        index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "size": len(body), "digest": _digest(body),
             "platform": {"os": "linux", "architecture": arch}} for arch, body in manifests.items()]}).encode()
        self.documents = {TAG: (index, OCI_INDEX), **{_digest(b): (b, OCI_MANIFEST) for b in manifests.values()}}
        documents = self.documents

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                prefix = f"/v2/{REPOSITORY}/manifests/"
                found = documents.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
                if self.path == "/v2/":
                    found = (b"{}", "application/json")
                if found is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                body, media_type = found
                self.send_response(200)
                self.send_header("Content-Type", media_type)
                self.send_header("Docker-Content-Digest", _digest(body))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.image = f"{self.host}/{REPOSITORY}:{TAG}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FixtureRegistry:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def registry() -> Iterator[FixtureRegistry]:
    with FixtureRegistry() as served:
        yield served


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    with loopback_moto() as endpoint:
        yield endpoint


def sandbox_ctx(tmp_path: Path, registry: FixtureRegistry, aws_endpoint: str, extra: str = "") -> Context:
    """A sandbox project whose published registry serves the stock-sized base image."""
    (tmp_path / "radstream.yaml").write_text(f"deployment: rs-disk\n{extra}")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    loaded.state_dir.mkdir(parents=True, exist_ok=True)
    (loaded.state_dir / "sandbox.json").write_text(json.dumps(
        {"running": True, "aws_endpoint": aws_endpoint, "registry": registry.host, "base_image": registry.image}))
    return Context(loaded, State.load(loaded.state_dir, "rs-disk", "sandbox"))


def test_the_amd64_manifest_is_read_and_the_stock_image_needs_more_than_eks_default_disk(registry: FixtureRegistry):
    found = read_footprint(registry.image)
    assert found.compressed == sum(AMD64_LAYERS) + 31_000
    problem = disk_problem(registry.image, found, 20)
    assert problem is not None and "7.6 GB compressed" in problem and "nodegroup.disk_gib" in problem
    assert disk_problem(registry.image, found, config.Config().nodegroup.disk_gib) is None


def test_up_refuses_before_any_change_and_plan_shows_it(tmp_path: Path, registry: FixtureRegistry, aws_endpoint: str):
    ctx = sandbox_ctx(tmp_path, registry, aws_endpoint, "nodegroup:\n  disk_gib: 20\n")
    world = tmp_path / "world"
    world.mkdir()
    phases = [MarkerPhase(world), TritonPhase()]

    plan = Engine(ctx, phases).run([0, 2], dry_run=True)
    assert plan.phases[0].status == "planned" and plan.phases[0].changes
    assert plan.phases[1].status == "failed" and "does not fit the nodes' 20 GiB disk" in plan.phases[1].error

    result = Engine(ctx, phases).run([0, 2])
    assert not result.ok and [p.number for p in result.phases] == [2]
    assert result.phases[0].error.startswith("refused before any change: the base image")
    assert result.mutations == 0 and not any(world.iterdir())  # phase 0 never ran


def test_the_default_disk_holds_the_stock_image(tmp_path: Path, registry: FixtureRegistry, aws_endpoint: str):
    ctx = sandbox_ctx(tmp_path, registry, aws_endpoint)
    assert Engine(ctx, [TritonPhase()]).preflight(2) is None
