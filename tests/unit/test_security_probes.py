"""The security test's verdicts, and its runner against a small WAF-like door on 127.0.0.1 that
blocks SQL injection, XSS, traversal, Log4j lookups and large bodies, and rate-limits."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest

from radstream import certificates
from radstream import security_probes as probes

MODEL = "radstream_cxr"
WINDOW = 60
ATTACK_PATTERNS = ("' OR 1=1", "<script", "..", "${jndi")
LARGE_BODY = 10_000_000


@dataclass
class DoorRules:
    patterns: tuple[str, ...] = ATTACK_PATTERNS
    rate_limit: int = 30  # requests in all, as a WAF counts one address's
    oversize: str = "refuse"  # "refuse" (413 up front), "close" (hang up) or "read" (wait for the body)
    requests: int = 0
    oversize_bytes_received: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class _WafHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Door

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, *args: object) -> None:
        pass  # keep the test output quiet

    def _answer(self, status: int, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def _read_what_arrives(self, declared: int) -> int:
        """Read the body for as long as bytes keep coming."""
        self.connection.settimeout(0.5)
        received = 0
        try:
            while received < declared and (chunk := self.rfile.read1(65536)):
                received += len(chunk)
        except TimeoutError:
            pass
        return received

    def _handle(self) -> None:
        rules = self.server.rules
        with rules.lock:
            rules.requests += 1
            count = rules.requests
        declared = int(self.headers.get("Content-Length") or 0)
        if declared >= LARGE_BODY:
            if rules.oversize == "close":
                self.close_connection = True
                return
            if rules.oversize == "refuse":
                self._answer(413, close=True)
                # Drain what follows before hanging up, as nginx does, or the client's unread bytes
                # make the close a reset that loses the answer.
                rules.oversize_bytes_received = self._read_what_arrives(declared)
                return None
            rules.oversize_bytes_received = self._read_what_arrives(declared)
            return self._answer(200, close=True)
        body = self.rfile.read(declared).decode(errors="replace")
        seen = unquote(self.path) + "\n" + str(self.headers) + unquote(body)
        if any(pattern in seen for pattern in rules.patterns):
            return self._answer(403)
        if count > rules.rate_limit:
            return self._answer(429)
        path = self.path.partition("?")[0]
        known = path == probes.READY_PATH or path.startswith(f"/v2/models/{MODEL}")
        self._answer(200 if known else 404)


class _Door(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, rules: DoorRules, tls: ssl.SSLContext | None):
        super().__init__(("127.0.0.1", 0), _WafHandler)
        self.rules = rules
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> certificates.Issued:
    return certificates.ensure(tmp_path_factory.mktemp("door-ca"), "test door CA", "door", ips=("127.0.0.1",))


@pytest.fixture
def start_door(issued: certificates.Issued) -> Iterator:
    started: list[tuple[_Door, threading.Thread]] = []

    def start(rules: DoorRules, tls: bool = True) -> probes.Door:
        context = None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(issued.server_cert, issued.server_key)
        server = _Door(rules, context)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        scheme = "https" if tls else "http"
        ca_pem = issued.ca_cert.read_text() if tls else None
        return probes.Door(f"{scheme}://127.0.0.1:{server.server_address[1]}", probes.tls_context(ca_pem), timeout=5)

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def good_inference() -> list[list[float]]:
    return [[0.1, 0.9, 0.0, 1.0]]


def run(door: probes.Door, rules: DoorRules, infer=good_inference) -> dict:
    results = probes.run_probes(door, MODEL, rules.rate_limit, WINDOW, infer, flood_seconds=5)
    return probes.report(door.url, results, None)


def by_name(payload: dict) -> dict[str, dict]:
    return {p["name"]: p for p in payload["probes"]}


# -- against the door -----------------------------------------------------------------------------
def test_a_door_that_blocks_every_attack_and_answers_legitimate_requests_is_ok(start_door):
    rules = DoorRules()
    payload = run(start_door(rules), rules)
    assert payload["ok"] is True, payload["probes"]
    assert set(payload) == {"ok", "endpoint", "probes", "attacks_blocked", "attacks_total", "legitimate_answered",
                            "legitimate_total", "guardduty"}
    names = [p["name"] for p in payload["probes"]]
    assert names[:3] == ["ready", "metadata", "inference"] and names[-1] == "flood"
    assert payload["attacks_blocked"] == payload["attacks_total"] == 11
    assert payload["legitimate_answered"] == payload["legitimate_total"] == 3
    probe = by_name(payload)
    assert probe["sqli-query"]["status"] == 403 and probe["log4j-header"]["status"] == 403
    assert probe["oversize-body"]["status"] == 413
    assert rules.oversize_bytes_received == probes.OVERSIZE_SENT_BYTES
    assert probe["flood"]["status"] == 429 and "rate-limited" in probe["flood"]["detail"]
    assert all(p["expected"] == ("blocked" if p["kind"] == "attack" else "answered") for p in payload["probes"])


def test_sql_injection_that_gets_through_fails_its_probes_and_the_run(start_door):
    rules = DoorRules(patterns=("<script", "..", "${jndi"))
    payload = run(start_door(rules), rules)
    assert payload["ok"] is False
    failing = {p["name"] for p in payload["probes"] if not p["passed"]}
    assert failing == {"sqli-query", "sqli-header", "sqli-body"}
    assert by_name(payload)["sqli-query"]["detail"] == "got through (HTTP 200)"
    assert payload["attacks_blocked"] == 8


def test_a_blocked_legitimate_request_fails(start_door):
    rules = DoorRules(patterns=(*ATTACK_PATTERNS, f"/v2/models/{MODEL}"))
    payload = run(start_door(rules), rules)
    metadata = by_name(payload)["metadata"]
    assert (metadata["passed"], metadata["blocked"], metadata["status"]) == (False, True, 403)
    assert payload["ok"] is False and payload["legitimate_answered"] == 2


def test_legitimate_requests_still_rate_limited_after_a_flood_say_how_long_to_wait(start_door):
    rules = DoorRules(rate_limit=0)
    payload = run(start_door(rules), rules)
    ready = by_name(payload)["ready"]
    assert ready["status"] == 429 and not ready["passed"]
    assert f"wait up to {WINDOW} s" in ready["detail"]
    assert "rate-limited" in probes.verdict(payload)


def test_the_oversize_probe_declares_50_mb_and_sends_only_a_little(start_door):
    rules = DoorRules(oversize="read")
    payload = run(start_door(rules), rules)
    oversize = by_name(payload)["oversize-body"]
    assert oversize["passed"] is False and oversize["detail"] == "got through (HTTP 200)"
    assert rules.oversize_bytes_received == probes.OVERSIZE_SENT_BYTES < 100 * 1024


def test_a_door_that_hangs_up_on_a_large_body_has_blocked_it(start_door):
    rules = DoorRules(oversize="close")
    oversize = by_name(run(start_door(rules), rules))["oversize-body"]
    assert (oversize["blocked"], oversize["passed"], oversize["status"]) == (True, True, None)


def test_a_flood_never_refused_gets_through_within_its_budget(start_door):
    rules = DoorRules(rate_limit=10_000)
    door = start_door(rules, tls=False)
    started = time.monotonic()
    flood = probes.run_flood(door, rate_limit=10, window_seconds=WINDOW, seconds=1.0)
    assert time.monotonic() - started < 3
    assert (flood.blocked, flood.passed, flood.status) == (False, False, 200)
    assert rules.requests <= 30 and "none refused" in flood.detail


def test_a_certificate_from_another_ca_is_an_error_not_an_answer(start_door, tmp_path: Path):
    rules = DoorRules()
    door = start_door(rules)
    stranger = certificates.ensure(tmp_path, "another CA", "door", ips=("127.0.0.1",))
    untrusting = probes.Door(door.url, probes.tls_context(stranger.ca_cert.read_text()), timeout=5)
    result = probes.judge(probes.legitimate_probes(MODEL)[0], probes.send(untrusting, probes.legitimate_probes(MODEL)[0]), WINDOW)
    assert result.passed is False and result.status is None and "TLS failure" in result.detail


def test_every_probe_sends_a_user_agent_and_real_attack_payloads():
    attacks = {p.name: p for p in probes.attack_probes(MODEL)}
    assert "%27%20OR%201%3D1" in attacks["sqli-query"].path
    assert "${jndi:" in dict(attacks["log4j-header"].headers)["X-Api-Version"]
    assert "%2e%2e%2f" in attacks["traversal-encoded"].path and "/../" in attacks["traversal"].path
    assert attacks["oversize-body"].declared_length == 50_000_000
    assert probes.USER_AGENT.startswith("radstream-security-test/")


# -- verdicts (pure) ------------------------------------------------------------------------------
ATTACK = probes.Probe("sqli-query", probes.ATTACK)
LEGIT = probes.Probe("ready", probes.LEGITIMATE)
OVERSIZE = next(p for p in probes.attack_probes(MODEL) if p.name == "oversize-body")


@pytest.mark.parametrize(("probe", "answer", "blocked", "passed"), [
    (ATTACK, probes.Answer(403), True, True),
    (ATTACK, probes.Answer(429), True, True),
    (ATTACK, probes.Answer(200), False, False),
    (ATTACK, probes.Answer(404), False, False),
    (ATTACK, probes.Answer(413), False, False),  # only the oversize probe counts 413 as a block
    (ATTACK, probes.Answer(502), False, False),
    (ATTACK, probes.Answer(None, closed=True, error="hung up"), False, False),
    (OVERSIZE, probes.Answer(413), True, True),
    (OVERSIZE, probes.Answer(400), True, True),
    (OVERSIZE, probes.Answer(None, closed=True, error="hung up"), True, True),
    (OVERSIZE, probes.Answer(None, error="no answer within 15 s"), False, False),
    (LEGIT, probes.Answer(200), False, True),
    (LEGIT, probes.Answer(403), True, False),
    (LEGIT, probes.Answer(429), True, False),
    (LEGIT, probes.Answer(503), False, False),
    (LEGIT, probes.Answer(None, error="TLS failure: bad certificate"), False, False),
])
def test_judge(probe, answer, blocked, passed):
    result = probes.judge(probe, answer, WINDOW)
    assert (result.blocked, result.passed) == (blocked, passed)


def test_errors_say_they_are_errors():
    assert probes.judge(ATTACK, probes.Answer(502), WINDOW).detail == "error: HTTP 502 from the door"
    assert probes.judge(LEGIT, probes.Answer(None, error="no answer within 15 s"), WINDOW).detail.startswith("error: ")


class _RefusedByTheDoor(Exception):
    """Shaped as tritonclient's InferenceServerException: the HTTP status as status()."""

    def status(self) -> str:
        return "403"


def _refused_inference():
    try:
        raise _RefusedByTheDoor("forbidden")
    except _RefusedByTheDoor as exc:
        raise RuntimeError("inference on 'radstream_cxr' failed") from exc


def test_an_inference_passes_only_with_probabilities_in_0_1_and_its_refusal_is_a_block():
    assert probes.run_inference(good_inference, WINDOW).passed is True
    out_of_range = probes.run_inference(lambda: [[0.5, 1.5]], WINDOW)
    assert out_of_range.passed is False and "not with probabilities" in out_of_range.detail
    assert probes.run_inference(lambda: [], WINDOW).passed is False
    refused = probes.run_inference(_refused_inference, WINDOW)
    assert (refused.status, refused.blocked, refused.passed) == (403, True, False)
    unreachable = probes.run_inference(lambda: (_ for _ in ()).throw(OSError("connection refused")), WINDOW)
    assert unreachable.status is None and unreachable.detail == "error: connection refused"


def test_flood_verdicts():
    assert probes.flood_result(429, 31, 2.0, 30, WINDOW).passed is True
    assert probes.flood_result(403, 31, 2.0, 30, WINDOW).blocked is True
    assert probes.flood_result(200, 90, 120.0, 30, WINDOW).passed is False
    assert probes.flood_result(502, 5, 1.0, 30, WINDOW).detail.startswith("error")
    assert probes.flood_result(200, 5, 1.0, 30, WINDOW, error="reset").passed is False


def test_the_verdict_names_what_failed():
    results = [probes.Result("ready", probes.LEGITIMATE, 200, False, True, ""),
               probes.Result("xss-body", probes.ATTACK, 200, False, False, "")]
    payload = probes.report("https://door", results, None)
    assert payload["ok"] is False
    assert probes.verdict(payload) == ("failed: 0/1 attacks blocked, 1/1 legitimate requests answered; failing: xss-body")
    assert probes.verdict(probes.report("https://door", results[:1], None)).startswith("ok: ")
