"""EKS bearer tokens expire (15 minutes after their X-Amz-Date); so do the sandbox's, here shortened to
a few seconds. The emulator refuses an old token with 401 as EKS does, and the product's client
outlives its tokens: nodegroup creations and rollouts hold one client for longer than a token lives."""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from radstream import config
from radstream.context import Context
from radstream.kube import client as kube_client
from radstream.kube.apply import apply, list_objects
from radstream.sandbox.kube import KubeEmulator
from radstream.state import State
from tests.support.kube import sandbox_token

pytestmark = pytest.mark.slow

LIFETIME = 2.0
# X-Amz-Date has whole seconds, so a token is at most LIFETIME + 1 s old when it expires.
PAST_LIFETIME = LIFETIME + 1.5
SERVER_LOG = "radstream.sandbox.kube.http_server"


@pytest.fixture
def emulator() -> Iterator[tuple[KubeEmulator, dict[str, str]]]:
    emulator = KubeEmulator(token_seconds=LIFETIME)
    info = emulator.start()
    try:
        yield emulator, info
    finally:
        emulator.stop()


@pytest.fixture
def ctx(tmp_path: Path, emulator: tuple[KubeEmulator, dict[str, str]]) -> Context:
    """A sandbox project whose sandbox.json names the emulator."""
    _, info = emulator
    (tmp_path / "radstream.yaml").write_text("target: sandbox\ndeployment: tokens\n")
    state_dir = tmp_path / ".radstream"
    state_dir.mkdir()
    (state_dir / "sandbox.json").write_text(json.dumps({"running": True, "aws_endpoint": None, **info}))
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, "tokens", "sandbox"))


def raw_get(info: dict[str, str], token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"{info['kubernetes_endpoint']}/api/v1/namespaces",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        tls = ssl.create_default_context(cafile=info["kubernetes_ca"])
        with urllib.request.urlopen(request, timeout=10, context=tls) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def test_a_token_older_than_its_lifetime_gets_401(emulator) -> None:
    _, info = emulator
    token = sandbox_token(info)
    assert raw_get(info, token)[0] == 200
    time.sleep(PAST_LIFETIME)
    code, body = raw_get(info, token)
    assert (code, body["reason"], body["code"]) == (401, "Unauthorized", 401)
    assert raw_get(info, sandbox_token(info))[0] == 200  # a fresh token is fine


def test_a_client_from_api_client_keeps_working_longer_than_a_token_lives(ctx) -> None:
    api = kube_client.api_client(ctx)
    assert list_objects(api, "Namespace")
    time.sleep(PAST_LIFETIME)
    apply(api, namespace("after-expiry"))  # a write: refused writes must not count, this one must
    assert "after-expiry" in {n["metadata"]["name"] for n in list_objects(api, "Namespace")}
    assert ctx.counter.total == 1


def test_the_client_renews_its_token_before_it_expires(ctx, monkeypatch, caplog) -> None:
    # Scaled down with the emulator's lifetime: 600 s of 900 on EKS.
    monkeypatch.setattr(kube_client, "TOKEN_REFRESH_SECONDS", LIFETIME / 3)
    caplog.set_level(logging.INFO, logger=SERVER_LOG)
    api = kube_client.api_client(ctx)
    for _ in range(3):
        assert list_objects(api, "Namespace")
        time.sleep(LIFETIME)
    # Renewed ahead of time, never after a refusal.
    assert [r.getMessage() for r in caplog.records if r.name == SERVER_LOG and "refused" in r.getMessage()] == []


def test_the_daemon_takes_the_lifetime_from_its_environment(monkeypatch) -> None:
    from radstream.sandbox.cluster import SandboxKubernetes
    from radstream.sandbox.kube.eks_auth import TOKEN_SECONDS_ENV

    monkeypatch.setenv(TOKEN_SECONDS_ENV, str(LIFETIME))
    # No emulated AWS behind it: its EKS sync just keeps retrying, which is all this test needs.
    service = SandboxKubernetes({"aws_endpoint": "http://127.0.0.1:9"}, "us-east-1", sync_interval=60)
    try:
        info = service.start()
        token = sandbox_token(info)
        assert raw_get(info, token)[0] == 200
        time.sleep(PAST_LIFETIME)
        assert raw_get(info, token)[0] == 401
    finally:
        service.stop()
