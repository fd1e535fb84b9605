"""The probes `radstream security test` sends to the public door, the verdict on each, and a small
runner that sends them one at a time with http.client.

The probe definitions, verdicts and the report are pure; only `send`, `run_flood`, `run_inference`
and `run_probes` touch the network (the inference itself is a callable the command builds on
TritonClient). Legitimate probes go first and the flood last: after a flood the door refuses this
address for up to a rate window, which would fail any legitimate request sent after it."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from radstream import __version__

ATTACK, LEGITIMATE = "attack", "legitimate"
READY_PATH = "/v2/health/ready"
# AWS's common rule set blocks requests without a User-Agent; every probe sends one, so only its
# payload can be what is blocked.
USER_AGENT = f"radstream-security-test/{__version__}"
BLOCKING_STATUSES = frozenset({403, 429})
# A body the door will not read is refused with 413 (nginx), 403 (the WAF's size rule) or 400.
OVERSIZE_BLOCKING_STATUSES = BLOCKING_STATUSES | {400, 413}
OVERSIZE_DECLARED_BYTES = 50_000_000
# What the oversize probe really sends: more than the 8 KB an ALB buffers for its WAF to inspect
# (so the door has what it waits for), a trifle next to the 50 MB declared.
OVERSIZE_SENT_BYTES = 64 * 1024
# The flood gives up after this many times the rate limit, or this long.
FLOOD_REQUEST_FACTOR = 3
FLOOD_SECONDS = 120.0
DEFAULT_TIMEOUT = 15.0

SQL_INJECTION = "1' OR 1=1 --"
CROSS_SITE_SCRIPT = "<script>alert(1)</script>"
LOG4J_LOOKUP = "${jndi:ldap://radstream-probe.invalid/a}"  # .invalid never resolves


@dataclass(frozen=True)
class Probe:
    name: str
    kind: str  # ATTACK or LEGITIMATE
    method: str = "GET"
    path: str = READY_PATH
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    declared_length: int | None = None  # a Content-Length beyond the body sent (the oversize probe)


INFERENCE = Probe("inference", LEGITIMATE, "POST")
FLOOD = "flood"


@dataclass(frozen=True)
class Answer:
    """What the door did with one request."""

    status: int | None
    closed: bool = False  # the door closed the connection without answering
    error: str | None = None  # why there is no status (timeout, TLS, refused connection)


@dataclass(frozen=True)
class Result:
    name: str
    kind: str
    status: int | None
    blocked: bool
    passed: bool
    detail: str

    @property
    def expected(self) -> str:
        return "blocked" if self.kind == ATTACK else "answered"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "expected": self.expected, "status": self.status,
                "blocked": self.blocked, "passed": self.passed, "detail": self.detail}


# -- the probes -----------------------------------------------------------------------------------
def _json(value: str) -> bytes:
    return json.dumps({"inputs": [{"name": value, "datatype": "BYTES", "shape": [1], "data": [value]}]}).encode()


def legitimate_probes(model: str) -> list[Probe]:
    return [Probe("ready", LEGITIMATE), Probe("metadata", LEGITIMATE, path=f"/v2/models/{model}")]


def attack_probes(model: str) -> list[Probe]:
    infer = f"/v2/models/{model}/infer"
    as_json = (("Content-Type", "application/json"),)
    # AWS's SQL injection and XSS rules read query strings, bodies and cookies, not arbitrary
    # headers: the header probes carry their payload in the Cookie header.
    return [
        Probe("sqli-query", ATTACK, path=f"{READY_PATH}?id={quote(SQL_INJECTION)}"),
        Probe("sqli-header", ATTACK, headers=(("Cookie", f"session={SQL_INJECTION}"),)),
        Probe("sqli-body", ATTACK, "POST", infer, as_json, _json(SQL_INJECTION)),
        Probe("xss-query", ATTACK, path=f"{READY_PATH}?q={quote(CROSS_SITE_SCRIPT)}"),
        Probe("xss-header", ATTACK, headers=(("Cookie", f"note={CROSS_SITE_SCRIPT}"),)),
        Probe("xss-body", ATTACK, "POST", infer, as_json, _json(CROSS_SITE_SCRIPT)),
        Probe("traversal", ATTACK, path=f"/v2/models/{model}/../../../../etc/passwd"),
        Probe("traversal-encoded", ATTACK, path=f"/v2/models/{model}/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        Probe("log4j-header", ATTACK, headers=(("X-Api-Version", LOG4J_LOOKUP),)),
        Probe("oversize-body", ATTACK, "POST", infer, as_json, b" " * OVERSIZE_SENT_BYTES,
              declared_length=OVERSIZE_DECLARED_BYTES),
    ]


# -- verdicts -------------------------------------------------------------------------------------
def rate_limited_detail(window_seconds: int) -> str:
    return (f"rate-limited (HTTP 429): this address is still refused after a recent flood; wait up to "
            f"{window_seconds} s (expose.rate_window_seconds) and run again")


def judge(probe: Probe, answer: Answer, window_seconds: int) -> Result:
    """Blocked is 403/429 (and for the oversize probe 400/413 or a connection closed unanswered);
    answered is 2xx. An attack must be blocked, a legitimate request answered; 5xx, timeouts and TLS
    failures are errors that fail the probe either way."""
    oversize = probe.declared_length is not None
    status = answer.status
    blocked = status in (OVERSIZE_BLOCKING_STATUSES if oversize else BLOCKING_STATUSES) or (oversize and answer.closed)

    def result(passed: bool, detail: str) -> Result:
        return Result(probe.name, probe.kind, status, blocked, passed, detail)

    if not blocked and status is None:
        return result(False, f"error: {answer.error or 'no answer'}")
    if status is not None and status >= 500:
        return result(False, f"error: HTTP {status} from the door")
    if probe.kind == ATTACK:
        if not blocked:
            return result(False, f"got through (HTTP {status})")
        if status is None:
            return result(True, "blocked: the door closed the connection before reading the body")
        if status == 429:
            return result(True, "blocked (HTTP 429), but by the rate limit, not a rule")
        return result(True, f"blocked (HTTP {status})")
    if status is not None and 200 <= status < 300:
        return result(True, f"answered (HTTP {status})")
    if status == 429:
        return result(False, rate_limited_detail(window_seconds))
    return result(False, f"refused (HTTP {status})" if blocked else f"not answered (HTTP {status})")


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an inference failure: tritonclient's exceptions carry it as status()."""
    seen: BaseException | None = exc
    while seen is not None:
        status = getattr(seen, "status", None)
        value = status() if callable(status) else None
        if isinstance(value, str) and value.isdigit():
            return int(value)
        seen = seen.__cause__ or seen.__context__
    return None


def judge_inference(probabilities: Any) -> Result:
    """An answered inference passes only when it returns probabilities, every one in [0, 1]."""
    import numpy as np

    values = np.asarray(probabilities, dtype=float).ravel()
    if values.size and np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)):
        return Result(INFERENCE.name, LEGITIMATE, 200, False, True, f"answered: {values.size} probabilities in [0, 1]")
    return Result(INFERENCE.name, LEGITIMATE, 200, False, False,
                  f"answered, but not with probabilities in [0, 1]: {values[:5].tolist()}")


def run_inference(infer: Callable[[], Any], window_seconds: int) -> Result:
    try:
        probabilities = infer()
    except Exception as exc:  # noqa: BLE001 - whatever stops the inference fails this probe, and only it
        status = _http_status(exc)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return judge(INFERENCE, Answer(status, error=None if status else reason), window_seconds)
    return judge_inference(probabilities)


def flood_result(status: int | None, sent: int, seconds: float, rate_limit: int, window_seconds: int,
                 error: str | None = None) -> Result:
    """The flood is blocked at its first 403/429; finishing the budget unrefused is getting through."""
    done = f"{sent} requests in {seconds:.0f} s"
    if error is not None:
        return Result(FLOOD, ATTACK, status, False, False, f"error after {done}: {error}")
    if status in BLOCKING_STATUSES:
        return Result(FLOOD, ATTACK, status, True, True, f"rate-limited (HTTP {status}) after {done}")
    if status is not None and not 200 <= status < 300:
        return Result(FLOOD, ATTACK, status, False, False, f"error: HTTP {status} after {done}")
    return Result(FLOOD, ATTACK, status, False, False,
                  f"got through: {done}, none refused (limit {rate_limit} per {window_seconds} s)")


# -- the report -----------------------------------------------------------------------------------
def report(endpoint: str, results: Sequence[Result], guardduty: dict[str, Any] | None) -> dict[str, Any]:
    attacks = [r for r in results if r.kind == ATTACK]
    legitimate = [r for r in results if r.kind == LEGITIMATE]
    return {
        "ok": all(r.passed for r in results),
        "endpoint": endpoint,
        "probes": [r.as_dict() for r in results],
        "attacks_blocked": sum(r.blocked for r in attacks),
        "attacks_total": len(attacks),
        "legitimate_answered": sum(r.passed for r in legitimate),
        "legitimate_total": len(legitimate),
        "guardduty": guardduty,
    }


def verdict(payload: dict[str, Any]) -> str:
    """One line: what was blocked and answered, naming what failed."""
    failed = [p["name"] for p in payload["probes"] if not p["passed"]]
    line = (f"{payload['attacks_blocked']}/{payload['attacks_total']} attacks blocked, "
            f"{payload['legitimate_answered']}/{payload['legitimate_total']} legitimate requests answered")
    if payload["ok"]:
        return f"ok: {line}"
    rate_limited = any(p["kind"] == LEGITIMATE and p["status"] == 429 for p in payload["probes"])
    hint = " (legitimate requests were rate-limited: a recent flood's block has not expired yet)" if rate_limited else ""
    return f"failed: {line}; failing: {', '.join(failed)}{hint}"


# -- the runner -----------------------------------------------------------------------------------
def tls_context(ca_pem: str | None) -> ssl.SSLContext:
    """Verification against the deployment's CA, or the system's trust store when there is none."""
    return ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()


@dataclass(frozen=True)
class Door:
    url: str  # https://host[:port] (http:// only in tests)
    tls: ssl.SSLContext | None
    timeout: float = DEFAULT_TIMEOUT

    def connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        connection: http.client.HTTPConnection
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(host, parts.port or 443, timeout=self.timeout, context=self.tls)
        else:
            connection = http.client.HTTPConnection(host, parts.port or 80, timeout=self.timeout)
        connection.connect()
        return connection


# The door hung up: for the oversize probe a refusal, for anything else an error.
_HUNG_UP = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, ssl.SSLEOFError)


def _failure(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.0f} s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failure: {exc}"
    return f"{type(exc).__name__}: {exc}"


def send(door: Door, probe: Probe) -> Answer:
    """Send one probe on its own connection; the answer's status, or why there is none."""
    try:
        connection = door.connect()
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, error=_failure(exc, door.timeout))
    try:
        headers = {"User-Agent": USER_AGENT, **dict(probe.headers)}
        if probe.declared_length is None:
            connection.request(probe.method, probe.path, body=probe.body or None, headers=headers)
        else:
            # Declared, never sent: the door must refuse on the header alone.
            connection.putrequest(probe.method, probe.path)
            for name, value in [*headers.items(), ("Content-Length", str(probe.declared_length))]:
                connection.putheader(name, value)
            connection.endheaders(probe.body)
        return Answer(connection.getresponse().status)
    except _HUNG_UP:
        return Answer(None, closed=True, error="the door closed the connection without answering")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, error=_failure(exc, door.timeout))
    finally:
        connection.close()


def run_flood(door: Door, rate_limit: int, window_seconds: int, seconds: float = FLOOD_SECONDS,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> Result:
    """GET the readiness path on one kept-alive connection until the door refuses (403/429), for at
    most FLOOD_REQUEST_FACTOR × rate_limit requests or `seconds`."""
    budget = FLOOD_REQUEST_FACTOR * rate_limit
    start = clock()
    deadline = start + seconds
    connection: http.client.HTTPConnection | None = None
    sent, status = 0, None
    try:
        while sent < budget and clock() < deadline:
            reused = connection is not None
            connection = connection or door.connect()
            try:
                connection.request("GET", READY_PATH, headers={"User-Agent": USER_AGENT})
                response = connection.getresponse()
                response.read()
            except _HUNG_UP:
                if not reused:
                    raise
                # A kept-alive connection the door let go idle: open another, the request was not counted.
                connection.close()
                connection = None
                continue
            sent, status = sent + 1, response.status
            if not 200 <= status < 300:
                break
            if response.will_close:
                connection.close()
                connection = None
            if sent > rate_limit:
                # AWS WAF evaluates rates about every 10 s, so its block lags: past the limit, spread the
                # rest of the budget over the rest of the time instead of spending it before the block lands.
                sleep(max(0.0, deadline - clock()) / max(1, budget - sent))
    except (OSError, http.client.HTTPException) as exc:
        return flood_result(status, sent, clock() - start, rate_limit, window_seconds, _failure(exc, door.timeout))
    finally:
        if connection is not None:
            connection.close()
    return flood_result(status, sent, clock() - start, rate_limit, window_seconds)


def run_probes(door: Door, model: str, rate_limit: int, window_seconds: int, infer: Callable[[], Any],
               announce: Callable[[str], None] = lambda name: None, flood_seconds: float = FLOOD_SECONDS) -> list[Result]:
    """Every probe in order: legitimate ones, the inference, the attacks, the flood last."""
    results = []
    for probe in legitimate_probes(model):
        announce(probe.name)
        results.append(judge(probe, send(door, probe), window_seconds))
    announce(INFERENCE.name)
    results.append(run_inference(infer, window_seconds))
    for probe in attack_probes(model):
        announce(probe.name)
        results.append(judge(probe, send(door, probe), window_seconds))
    announce(f"{FLOOD} (until refused; at most {FLOOD_REQUEST_FACTOR * rate_limit} requests or {flood_seconds:.0f} s)")
    results.append(run_flood(door, rate_limit, window_seconds, flood_seconds))
    return results
