"""The sandbox daemon: starts in the background, publishes its endpoints, reports its status,
stops cleanly with everything it started, and is quiet when stopped twice."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest

from radstream.sandbox import daemon
from tests.integration.sandbox_fixtures import REGION, client, create_function

pytestmark = pytest.mark.slow


def _port_open(url: str) -> bool:
    parsed = urlparse(url)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((parsed.hostname, parsed.port)) == 0


def _session_members(session_id: int) -> list[int]:
    """Live processes in the daemon's session (it leads its own): itself and its Lambda workers."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == session_id:  # state, ppid, pgrp, session
                members.append(int(entry.name))
    return members


def _scrapes_triton(prometheus: str) -> bool:
    import time
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{prometheus}/api/v1/targets", timeout=5) as response:
            targets = json.load(response)["data"]["activeTargets"]
        if [t for t in targets if t["labels"]["job"] == "triton" and t["health"] == "up"]:
            return True
        time.sleep(1)
    return False


def test_start_status_stop(tmp_path: Path) -> None:
    started = daemon.start(tmp_path, timeout=60, region=REGION)
    try:
        recorded = json.loads((tmp_path / "sandbox.json").read_text())
        assert recorded["running"] is True and recorded["pid"] == started["pid"] != os.getpid()
        assert urlparse(recorded["aws_endpoint"]).hostname == "127.0.0.1"
        assert Path(recorded["logs"]["daemon"]).is_file()
        assert recorded["started_at"]
        if recorded["prometheus"]:  # Debian's prometheus scraping the local Triton, on loopback
            assert urlparse(recorded["prometheus"]).hostname == "127.0.0.1" and _scrapes_triton(recorded["prometheus"])
        assert daemon.status(tmp_path)["running"] is True
        assert daemon.start(tmp_path)["pid"] == started["pid"]  # already running: no second daemon

        # A Lambda worker is a child in the daemon's session; stop must take it down too.
        lam = client(started, "lambda")
        client(started, "iam").create_role(RoleName="sandbox-test-role", AssumeRolePolicyDocument="{}")
        create_function(lam, "hello", {"app.py": "def handler(event, context):\n    return 'hi'\n"})
        assert json.loads(lam.invoke(FunctionName="hello")["Payload"].read()) == "hi"
        assert len(_session_members(started["pid"])) >= 2
    finally:
        stopped = daemon.stop(tmp_path)
    assert stopped["running"] is False
    assert daemon.status(tmp_path)["running"] is False
    assert not _port_open(started["aws_endpoint"])
    if started["prometheus"]:
        assert not _port_open(started["prometheus"])
    assert _session_members(started["pid"]) == []
    assert daemon.stop(tmp_path)["running"] is False  # second stop: quiet


def test_an_external_aws_endpoint_replaces_the_embedded_moto(tmp_path: Path) -> None:
    external = "http://127.0.0.1:4566"
    try:
        started = daemon.start(tmp_path, timeout=60, aws_endpoint_url=external)
        assert started["running"] is True
        assert started["aws_endpoint"] == external
        assert "lambda" not in started["logs"]  # no embedded moto, so no Lambda runner
    finally:
        daemon.stop(tmp_path)


def test_status_and_stop_without_a_daemon(tmp_path: Path) -> None:
    assert daemon.status(tmp_path)["running"] is False
    assert daemon.stop(tmp_path)["running"] is False
