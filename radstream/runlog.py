"""What a run leaves for whoever debugs it: the AWS and Kubernetes calls it made and the traceback of
a failure, on stderr with `-v`, and always in a DEBUG log file per run under `.radstream/logs/`.

- `radstream.calls`: one line per call, `aws s3.PutObject 200` or `k8s GET /api/v1/namespaces 200`:
  names and statuses only, never parameters, headers, bodies or query strings (they carry bucket
  keys made from study ids, tokens and presigned URLs).
- `radstream.trace`: the traceback of a failure.
- `radstream.run`: the command (its name and the names of the options given, never their values:
  those are paths of studies), the deployment, warnings. Only in the file: stderr shows them already.

The file, `run-<UTC time>-<pid>.log`, is written only once a command opens the deployment
(`attach`), so runs that never read a project (`deid`, a config error) leave none. The newest
KEEP_RUNS of them are kept (the sandbox daemon's logs share the folder and are left alone). The folder
is mode 700 and the files 600; every line passes `redact` on its way to the file or stderr."""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

KEEP_RUNS = 20
LOGS_DIR = "logs"

ROOT = logging.getLogger("radstream")
CALLS = logging.getLogger("radstream.calls")
TRACE = logging.getLogger("radstream.trace")
RUN = logging.getLogger("radstream.run")
# Without a handler of ours, Python's last-resort handler would print warnings a second time.
ROOT.addHandler(logging.NullHandler())

_SECRETS = [
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), "<private key>"),
    # An Authorization header's value has spaces and commas: all of it to the end of the quote or line.
    (re.compile(r"(?i)\b(authorization)(\W{1,4})[^'\"\n]+"), r"\1\2<redacted>"),
    (re.compile(r"(?i)\b(x-amz-security-token|x-amz-signature|x-amz-credential)(\W{1,4})[^\s&'\"]+"),
     r"\1\2<redacted>"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>"),
    (re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]+"), "k8s-aws-v1.<redacted>"),
    (re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"), "<access key id>"),
    (re.compile(r"(?i)\b(aws_secret_access_key|aws_session_token|secret_?access_?key|session_?token|password)"
                r"(\W{1,3})[^\s,'\"}]+"), r"\1\2<redacted>"),
]
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


def redact(text: str) -> str:
    """`text` without credentials: the values of the AWS credential variables and whatever looks like
    a key, token, signature or Authorization header."""
    for variable in _CREDENTIAL_VARIABLES:
        value = os.environ.get(variable)
        if value and len(value) >= 8:
            text = text.replace(value, f"<{variable}>")
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# -- the calls ------------------------------------------------------------------------------------
def watch_aws(events: Any) -> None:
    """Log every AWS call a botocore session makes: with the status of its answer, or the error that
    left it without one (no connection, a timeout)."""
    events.register("after-call", _answered)
    events.register("after-call-error", _unanswered)


def _answered(model=None, http_response=None, **_: object) -> None:
    if model is not None and http_response is not None:
        CALLS.debug("aws %s.%s %s", model.service_model.service_name, model.name, http_response.status_code)


def _unanswered(event_name: str = "", exception: BaseException | None = None, **_: object) -> None:
    # The event is named after-call-error.<service>.<Operation>; no model comes with it.
    CALLS.debug("aws %s %s", event_name.split(".", 1)[-1], type(exception).__name__)


def kube_call(method: str, url: str, status: int) -> None:
    CALLS.debug("k8s %s %s %s", method.upper(), urlsplit(url).path, status)


# -- a run ----------------------------------------------------------------------------------------
class _Run:
    def __init__(self) -> None:
        self.handlers: list[logging.Handler] = []
        self.header: str | None = None
        self.path: Path | None = None


_run = _Run()  # the one run of this process (in tests, of the CliRunner invocation under way)


def command_line(ctx: Any) -> str:
    """`phase run (options: json, phase, yes)` for a typer context: the command path and the names
    of the parameters given."""
    names: list[str] = []
    path: list[str] = []
    node: Any = ctx
    while node is not None:
        names += [k for k, v in node.params.items() if v]
        if node.parent is not None:  # the root's name is however Python was started
            path.insert(0, node.info_name)
        node = node.parent
    return f"{' '.join(path) or 'radstream'} (options: {', '.join(sorted(set(names))) or 'none'})"


def start(command: str, verbose: int) -> None:
    """Begin a run of `command` (see command_line): with `verbose`, calls and tracebacks go to
    stderr from now on."""
    finish()
    ROOT.setLevel(logging.DEBUG)
    _run.header = command
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_RedactingFormatter("debug: %(message)s"))
        handler.addFilter(lambda record: not record.name.startswith(RUN.name))
        _add(handler)


def _add(handler: logging.Handler) -> None:
    ROOT.addHandler(handler)
    _run.handlers.append(handler)


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def attach(state_dir: Path, command: str, deployment: str, target: str) -> Path | None:
    """Start this run's log file under `state_dir`/logs (once per run; only after `start`)."""
    if _run.header is None or _run.path is not None:
        return _run.path
    folder = _private_dir(state_dir / LOGS_DIR)
    existing = sorted(folder.glob("run-*.log"))  # the UTC time follows `run-`: oldest first
    for old in existing[:max(0, len(existing) - (KEEP_RUNS - 1))]:
        old.unlink(missing_ok=True)
    name = f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%S.%fZ}-{os.getpid()}.log"
    path = folder / name
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    _add(handler)
    _run.path = path
    RUN.info("radstream %s", _run.header)
    RUN.info("%s on deployment %s, target %s", command, deployment, target)
    return path


def failed(exc: BaseException, where: str) -> None:
    """Record the traceback of a failure (stderr with -v, and the file)."""
    TRACE.debug("%s failed", where, exc_info=(type(exc), exc, exc.__traceback__))


def finish() -> None:
    global _run
    for handler in _run.handlers:
        ROOT.removeHandler(handler)
        handler.close()
    _run = _Run()
    ROOT.setLevel(logging.NOTSET)
