"""What a run leaves for debugging, and what it never does unasked. The CLI runs in a subprocess
against the `aws` target pointed at a local fake that refuses everything (tests/support/fake_aws.py):
no account is needed and nothing real is reached.

- demo, phase run and up ask before touching an AWS account: without a terminal or --yes, exit 2
  before the first AWS request;
- -v shows every call and the traceback of a failure on stderr;
- every run writes a DEBUG log under .radstream/logs/: private, redacted, the newest KEEP_RUNS kept."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from radstream import runlog
from tests.conftest import CliResult, cli_env
from tests.support.fake_aws import CREDENTIALS, FakeAws


@pytest.fixture
def fake_aws():
    with FakeAws() as fake:
        yield fake


@pytest.fixture
def aws_project(tmp_path: Path, fake_aws: FakeAws) -> Path:
    (tmp_path / "radstream.yaml").write_text(f"target: aws\ndeployment: rs-test\naws:\n  endpoint_url: {fake_aws.url}\n")
    return tmp_path


def radstream(project: Path, *args: str) -> CliResult:
    # stdin is not a terminal: a question cannot be answered, so it must be refused.
    proc = subprocess.run([sys.executable, "-m", "radstream.cli", *args], check=False, cwd=project,
                          env=cli_env(CREDENTIALS), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("command", [["up"], ["demo"], ["phase", "run", "3"], ["phase", "run", "7"]])
def test_changing_an_aws_account_is_refused_unasked_before_any_call(aws_project, fake_aws, command):
    result = radstream(aws_project, *command)
    assert result.code == 2, result.stderr
    assert "needs confirmation" in result.stderr and "--yes" in result.stderr
    assert fake_aws.requests == []


def test_verbose_shows_the_calls_and_the_traceback_and_access_denied_names_the_action(aws_project, fake_aws):
    quiet = radstream(aws_project, "phase", "run", "0", "--yes")
    assert quiet.code == 1 and "debug:" not in quiet.stderr and "Traceback" not in quiet.stderr
    loud = radstream(aws_project, "-v", "phase", "run", "0", "--yes")
    assert loud.code == 1
    assert "debug: aws eks.DescribeCluster 404" in loud.stderr
    assert "debug: aws sts.GetCallerIdentity 403" in loud.stderr
    assert "Traceback (most recent call last)" in loud.stderr and "botocore.exceptions.ClientError" in loud.stderr
    assert "grant sts:GetCallerIdentity" in loud.stdout  # the refusal is a user error with a hint
    assert not any(value in loud.stderr for value in CREDENTIALS.values())


def test_a_failed_run_leaves_a_private_redacted_debug_log(aws_project, fake_aws):
    result = radstream(aws_project, "phase", "run", "0", "--yes", "--json")
    assert result.code == 1 and result.json["step"] == "buckets" and result.json["type"] == "AccessDenied"
    folder = aws_project / ".radstream" / "logs"
    logs = list(folder.glob("run-*.log"))
    assert len(logs) == 1
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    text = logs[0].read_text()
    assert "phase run (options: json_output, phase, yes)" in text
    assert "aws eks.DescribeCluster 404" in text and "aws sts.GetCallerIdentity 403" in text
    assert "Traceback (most recent call last)" in text and "AccessDenied" in text
    assert not any(value in text for value in CREDENTIALS.values())
    assert "Authorization" not in text and "Signature" not in text


def test_a_run_that_reads_no_project_leaves_no_log_and_its_error_is_shown_as_text(tmp_path: Path):
    (tmp_path / "radstream.yaml").write_text("target: nowhere\n")
    result = radstream(tmp_path, "status")
    # The message names its source in brackets, [/…/radstream.yaml]: not to be read as markup.
    assert result.code == 2 and f"[{tmp_path.resolve() / 'radstream.yaml'}]" in result.stderr.replace("\n", "")
    assert not (tmp_path / ".radstream").exists()


def test_the_newest_runs_are_kept_and_the_sandbox_logs_left_alone(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(runlog, "KEEP_RUNS", 3)
    folder = tmp_path / "logs"
    folder.mkdir()
    old = [folder / f"run-2000010{i}T000000.000000Z-1.log" for i in range(4)]
    for path in [*old, folder / "daemon.log"]:
        path.write_text("")
    runlog.start("status (options: none)", verbose=0)
    try:
        written = runlog.attach(tmp_path, "status", "rs-test", "sandbox")
    finally:
        runlog.finish()
    assert sorted(p.name for p in folder.iterdir()) == sorted([old[2].name, old[3].name, written.name, "daemon.log"])
    assert "status on deployment rs-test, target sandbox" in written.read_text()


def test_redact_removes_credentials_tokens_signatures_and_keys(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    text = runlog.redact(
        "key AKIAIOSFODNN7EXAMPLE secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "
        "url https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F20240101&X-Amz-Signature=abc123&x=1 "
        "headers {'Authorization': 'AWS4-HMAC-SHA256 Credential=abc'} Bearer eyJhbGciOi.payload.sig "
        "token k8s-aws-v1.aHR0cHM6Ly9zdHM "
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY----- aws_session_token=IQoJb3JpZ2lu")
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "abc123", "AWS4-HMAC-SHA256", "eyJhbGciOi",
                   "aHR0cHM6Ly9zdHM", "MIIEpAIBAAKCAQEA", "IQoJb3JpZ2lu"):
        assert secret not in text, secret
    assert "x=1" in text and "<private key>" in text


def test_kubernetes_calls_are_logged_with_method_path_and_status_only(tmp_path: Path, caplog):
    from kubernetes import client as k8s

    from radstream.kube.client import api_client
    from tests.unit.test_engine import make_ctx

    class Namespaces(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None: ...

        def do_GET(self) -> None:
            body = json.dumps({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {}, "items": []}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    from radstream.sandbox.kube.tls import ensure_ca, server_context

    # Served as the sandbox serves its cluster: over TLS, with a CA of its own.
    ca = ensure_ca(tmp_path / "ca")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Namespaces)
    server.socket = server_context(tmp_path / "ca").wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ctx = make_ctx(tmp_path)
        ctx.state_dir.mkdir(exist_ok=True)
        (ctx.state_dir / "sandbox.json").write_text(json.dumps({
            "kubernetes_endpoint": f"https://127.0.0.1:{server.server_address[1]}", "kubernetes_ca": str(ca),
            "kubernetes_access_key_id": "AKIDSANDBOXEXAMPLE"}))
        with caplog.at_level(logging.DEBUG, logger="radstream.calls"):
            k8s.CoreV1Api(api_client(ctx)).list_namespace(label_selector="app=triton")
    finally:
        server.shutdown()
        server.server_close()
    assert caplog.messages == ["k8s GET /api/v1/namespaces 200"]  # no query string, no token
