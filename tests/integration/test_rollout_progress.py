"""The rollout wait on a first pull of a big image: what the pods do is shown while waiting, and an
image the node cannot pull is named in the failure. Driven through the Kubernetes API emulator over
HTTP with the official client; its kubelet pulls through `image_pull_hook`, here a node whose disk
cannot hold the stock Triton image."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from radstream.errors import WaitTimeout
from radstream.kube.apply import apply, wait_rollout
from radstream.kube.drain import poll as plain_poll
from radstream.sandbox.kube import KubeEmulator
from tests.support.kube import sandbox_api_client

# Often enough to see a pod that spends 2 s pulling.
poll = partial(plain_poll, interval=0.5)

pytestmark = pytest.mark.slow

STOCK = "nvcr.io/nvidia/tritonserver:24.08-py3"
NO_SPACE = (f'rpc error: code = Unknown desc = failed to pull and unpack image "{STOCK}": failed to extract '
            "layer sha256:4f1c: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/41/fs/"
            "usr/local/cuda/lib64/libcublasLt.so.12: no space left on device")


def deployment(image: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "server"}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "server", "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "server", "image": image,
                                         "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}


@pytest.fixture
def cluster() -> Iterator[tuple[KubeEmulator, Any]]:
    # Pods take 2 s to start: long enough for a poll to see them pulling.
    emulator = KubeEmulator(node_ready_delay=0.05, pod_start_delay=2.0, pod_ready_delay=0.1, probe_period=0.05)
    emulator.kubelet.image_pull_hook = lambda _pod, image: NO_SPACE if image == STOCK else None
    api = sandbox_api_client(emulator.start())
    emulator.add_nodegroup("workers", "t3.large", 1)
    yield emulator, api
    api.close()
    emulator.stop()


def test_pods_pulling_their_image_are_shown_while_the_rollout_waits(cluster: tuple[KubeEmulator, Any]):
    _, api = cluster
    apply(api, deployment("registry.example/small:1"))
    shown: list[str] = []
    wait_rollout(poll, api, "default", "server", timeout=60, log=shown.append)
    assert any("ContainerCreating (Pulling: Pulling image \"registry.example/small:1\")" in line for line in shown), shown


def test_an_image_the_node_cannot_pull_is_named_in_the_failure(cluster: tuple[KubeEmulator, Any]):
    _, api = cluster
    apply(api, deployment(STOCK))
    shown: list[str] = []
    with pytest.raises(WaitTimeout) as failed:
        wait_rollout(poll, api, "default", "server", timeout=6, log=shown.append)
    message = str(failed.value)
    assert "0 of 1 replicas ready" in message or "0 of 1 replicas updated" in message
    assert f"ImagePullBackOff {STOCK}: Back-off pulling image \"{STOCK}\": ErrImagePull: " in message
    assert "no space left on device" in message
    assert any("ImagePullBackOff" in line or "ErrImagePull" in line for line in shown), shown
