"""Run the real `radstream` CLI in this process while AWS and the Kubernetes API misbehave.

usage: python -m tests.support.fault_harness --report FILE [--seed N] [--rate 0.1] [--kube-rate R]
                                             -- <radstream arguments>

- AWS: a botocore `before-send` handler answers a seeded fraction of calls itself, before anything
  is sent: throttling (400 ThrottlingException / Throttling / SlowDown in the service's own error
  format), 500, 503, or a read timeout.
- Kubernetes: a small HTTP proxy on 127.0.0.1 in front of the sandbox's API emulator answers a
  seeded fraction of requests with 409 or 500, and cuts watch streams after their first line; the
  sandbox target's published endpoints point the kubernetes client at the proxy.

When the command ends, FILE receives {"calls": {"aws": n, "kube": n}, "aws": {kind: n}, "kube": {kind: n}}:
the calls seen and the faults injected.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import random
import ssl
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

AWS_FAULTS = ("throttle", "500", "503", "timeout")
KUBE_FAULTS = ("409", "500")
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Faults:
    """Seeded choice of which call fails and how; tallies what was injected."""

    def __init__(self, seed: int, rate: float, kube_rate: float | None = None):
        self.random = random.Random(seed)
        self.rates = {"aws": rate, "kube": rate if kube_rate is None else kube_rate}
        self.injected: dict[str, Counter[str]] = {"aws": Counter(), "kube": Counter()}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def pick(self, side: str, kinds: tuple[str, ...]) -> str | None:
        with self._lock:
            self.calls[side] += 1
            if self.random.random() >= self.rates[side]:
                return None
            kind = self.random.choice(kinds)
            self.injected[side][kind] += 1
            return kind

    def count(self, side: str, kind: str) -> None:
        with self._lock:
            self.injected[side][kind] += 1

    def report(self) -> dict[str, dict[str, int]]:
        return {"calls": dict(self.calls), **{side: dict(counts) for side, counts in self.injected.items()}}


# -- AWS --------------------------------------------------------------------------------------------
class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_: Any):
        yield self.data


def _error_body(service: str, code: str, message: str) -> tuple[bytes, dict[str, str]]:
    """The error document each protocol family uses, so botocore parses the code it would see."""
    if service == "s3":
        return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode(), {"Content-Type": "application/xml"}
    if service in ("iam", "sts", "sns"):  # the query protocol
        body = f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error></ErrorResponse>"
        return body.encode(), {"Content-Type": "text/xml"}
    if service == "ec2":
        body = f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors></Response>"
        return body.encode(), {"Content-Type": "text/xml"}
    return json.dumps({"__type": code, "message": message}).encode(), {
        "Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code}


THROTTLE_CODES = {"s3": "SlowDown", "iam": "Throttling", "sts": "Throttling", "sns": "Throttling", "ec2": "RequestLimitExceeded"}


def aws_handler(faults: Faults):
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ReadTimeoutError

    def before_send(request=None, event_name: str = "", **_: Any):
        kind = faults.pick("aws", AWS_FAULTS)
        if kind is None:
            return None
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        service = event_name.split(".")[1].lower().replace(" ", "")
        status, code = {"throttle": (400, THROTTLE_CODES.get(service, "ThrottlingException")),
                        "500": (500, "InternalError"), "503": (503, "ServiceUnavailable")}[kind]
        body, headers = _error_body(service, code, f"injected fault: {kind}")
        return AWSResponse(request.url, status, headers, _Body(body))

    return before_send


# -- Kubernetes -------------------------------------------------------------------------------------
def kube_proxy(upstream: str, ca_file: str, faults: Faults) -> ThreadingHTTPServer:
    """Plain HTTP in front of the emulator's HTTPS (verified with its CA)."""
    target = urlsplit(upstream)
    tls = ssl.create_default_context(cafile=ca_file)

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            return

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            # A 409 to a create means "already exists", an answer rather than a fault: POSTs get 500s.
            kind = faults.pick("kube", KUBE_FAULTS if self.command != "POST" else ("500",))
            if kind is not None:
                status = int(kind)
                reason = "Conflict" if status == 409 else "InternalError"
                document = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                                       "reason": reason, "message": f"injected fault: {status}"}).encode()
                self._answer(status, {"Content-Type": "application/json"}, document)
                return
            upstream_conn = http.client.HTTPSConnection(target.hostname, target.port, timeout=120, context=tls)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            upstream_conn.request(self.command, self.path, body=body, headers=headers)
            response = upstream_conn.getresponse()
            if "watch=true" in self.path or "watch=1" in self.path:
                self._cut_watch(response)
            else:
                data = response.read()
                self._answer(response.status, {k: v for k, v in response.getheaders()
                                               if k.lower() not in HOP_HEADERS}, data)
            upstream_conn.close()

        def _answer(self, status: int, headers: dict[str, str], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _cut_watch(self, response: http.client.HTTPResponse) -> None:
            """Relay the first event of a watch, then drop the connection as a flaky LB would."""
            self.send_response(response.status)
            self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
            self.end_headers()
            self.wfile.write(response.readline())
            self.wfile.flush()
            faults.count("kube", "watch-dropped")
            self.close_connection = True

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="kube-fault-proxy", daemon=True).start()
    return server


def install(faults: Faults) -> None:
    from radstream.context import Context
    from radstream.targets.sandbox import SandboxTarget

    original_session = Context.__dict__["boto_session"].func
    original_endpoints = SandboxTarget.__dict__["endpoints"].func
    proxies: dict[str, ThreadingHTTPServer] = {}

    def boto_session(self):
        session = original_session(self)
        session.events.register("before-send", aws_handler(faults))
        return session

    def endpoints(self):
        info = dict(original_endpoints(self))
        upstream = info["kubernetes_endpoint"]
        if upstream not in proxies:
            proxies[upstream] = kube_proxy(upstream, info["kubernetes_ca"], faults)
        info["kubernetes_endpoint"] = f"http://127.0.0.1:{proxies[upstream].server_address[1]}"
        return info

    for owner, name, func in ((Context, "boto_session", boto_session), (SandboxTarget, "endpoints", endpoints)):
        patched = functools.cached_property(func)
        patched.__set_name__(owner, name)
        setattr(owner, name, patched)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="fault_harness")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.1, help="fraction of AWS calls that fail")
    parser.add_argument("--kube-rate", type=float, help="fraction of Kubernetes requests that fail (default: --rate)")
    args = parser.parse_args(argv[:split])
    faults = Faults(args.seed, args.rate, args.kube_rate)
    install(faults)

    from radstream.cli import main as cli_main

    sys.argv = ["radstream", *argv[split + 1:]]
    code = 0
    try:
        cli_main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        args.report.write_text(json.dumps(faults.report()))
    return code


if __name__ == "__main__":
    sys.exit(main())
