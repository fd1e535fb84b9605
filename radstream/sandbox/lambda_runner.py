"""Runs the uploaded Lambda code for moto, which without Docker never executes a handler.

moto calls `LambdaFunction._invoke_lambda(event) -> (payload_text, errored, logs)` for direct
invokes, Step Functions tasks and event sources alike; `install()` replaces it. Each function
version gets warm worker processes (a small pool, so concurrent executions do not queue behind one
another) that import the handler once and then answer one JSON line per invocation. A worker runs
with the function's environment, boto3 pointed at the sandbox with an AssumeRole session of the
function's execution role (which radstream.sandbox.iam_enforcement holds to the role's policies),
and sys.path = [extracted code, layers' python dirs, this venv]. Errors come back as Lambda reports them
(`{"errorType", "errorMessage", "stackTrace"}` with FunctionError set), which is what moto's Step
Functions reads `errorType` from to match Retry/Catch. A function that outlives its Timeout is
killed and reported as `Sandbox.Timedout`, the name AWS uses. A function has at most
MAX_WORKERS_PER_FUNCTION environments; an invocation that finds them all busy is refused at once with
Lambda's 429 TooManyRequestsException, as a throttled synchronous invoke is on AWS, never queued. Each worker, an execution environment,
writes its invocations' logs (START, what the handler printed, END, REPORT) to its own stream in
/aws/lambda/<function>, creating that group when missing as Lambda does: untagged, never expiring."""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, cast

from radstream.sandbox import MAX_WORKERS_PER_FUNCTION, lambda_metrics
from radstream.sandbox.role_sessions import RoleSessions, Session

log = logging.getLogger(__name__)

TIMEOUT_ERROR = "Sandbox.Timedout"
# Lambda gives init 10 s outside the function timeout; a loaded 2-core machine needs more slack.
INIT_TIMEOUT_SECONDS = 60.0

# The worker's program (see lambda_worker.py), run by path with `python -I`.
WORKER = Path(__file__).with_name("lambda_worker.py")


def report_line(request_id: str, duration_ms: float, memory_mb: int, max_memory_mb: int | None,
                init_ms: float | None) -> str:
    """Lambda's REPORT line: billed in whole milliseconds, Init Duration only after a cold start."""
    parts = [f"REPORT RequestId: {request_id}", f"Duration: {duration_ms:.2f} ms",
             f"Billed Duration: {math.ceil(duration_ms)} ms", f"Memory Size: {memory_mb} MB"]
    if max_memory_mb is not None:
        parts.append(f"Max Memory Used: {max_memory_mb} MB")
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    return "\t".join(parts)


class Throttled(Exception):
    """Every execution environment the function may have is busy."""


def throttle_error() -> Exception:
    """Lambda's answer to a synchronous invoke over the function's concurrency."""
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError("TooManyRequestsException", "Rate Exceeded.")
    error.code = 429
    error.description = json.dumps({"__type": "TooManyRequestsException", "message": "Rate Exceeded.",
                                    "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
                                    "Type": "User"})
    return error


class WorkerGone(Exception):
    """The worker died or stopped answering; it has been killed."""


@dataclass(frozen=True)
class FunctionSpec:
    """Everything that, when changed, needs a fresh worker."""

    account: str
    region: str
    name: str
    version: str
    arn: str
    role: str
    handler: str
    runtime: str
    memory: int
    timeout: float
    code_hash: str
    layer_hashes: tuple[str, ...]
    environment: tuple[tuple[str, str], ...]

    @property
    def pool_key(self) -> tuple[str, str, str, str]:
        return (self.account, self.region, self.name, self.version)

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    def new_log_stream(self) -> str:
        """Lambda's name for the log stream of one execution environment."""
        return f"{datetime.now(timezone.utc):%Y/%m/%d}/[{self.version}]{uuid.uuid4().hex}"


def _hex_of(aws_sha256: str) -> str:
    # Lambda reports CodeSha256 base64-encoded; hex makes a path-safe cache key.
    return base64.b64decode(aws_sha256).hex()


class CodeCache:
    """Zips extracted once per content hash; concurrent extractions race safely via rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def extract(self, kind: str, code_hash: str, zip_bytes: bytes) -> Path:
        target = self.root / kind / code_hash
        if target.is_dir():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{code_hash[:12]}-", dir=target.parent))
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(staging)
        try:
            staging.rename(target)
        except OSError:  # another thread extracted the same code first
            shutil.rmtree(staging, ignore_errors=True)
        return target


def layer_paths(layer_root: Path) -> list[str]:
    """The directories Lambda's Python runtime puts on sys.path for a layer mounted at /opt."""
    python = layer_root / "python"
    candidates = sorted(python.glob("lib/python3*/site-packages")) + [python]
    return [str(path) for path in candidates if path.is_dir()]


class Worker:
    def __init__(self, spec: FunctionSpec, code_dir: Path, paths: list[str], env: dict[str, str], log_file: Path) -> None:
        self.spec = spec
        self.log_stream = spec.new_log_stream()  # a worker is an execution environment: one stream
        self.cold = True
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(log_file, "ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(WORKER), spec.handler, json.dumps(paths)],
                cwd=code_dir,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        # Both are pipes (stdin=PIPE, stdout=PIPE); Popen's type cannot tell that from its arguments.
        self._requests = cast("IO[bytes]", self.process.stdin)
        self._replies = cast("IO[bytes]", self.process.stdout)
        self._pending = b""
        started = time.monotonic()
        reply = self._read(INIT_TIMEOUT_SECONDS)
        self.init_seconds = time.monotonic() - started
        self.init_logs = reply.get("logs", "")
        self.init_error: dict[str, Any] | None = reply.get("init_error")
        if self.init_error:
            self.kill()

    def invoke(self, event: Any, context: dict[str, Any]) -> dict[str, Any]:
        request = {"event": event, "context": context, "timeout": self.spec.timeout}
        try:
            self._requests.write((json.dumps(request) + "\n").encode())
            self._requests.flush()
        except (BrokenPipeError, OSError) as exc:
            self.kill()
            raise WorkerGone(f"worker exited before the invocation (code {self.process.poll()})") from exc
        return self._read(self.spec.timeout)

    def _read(self, timeout: float) -> dict[str, Any]:
        """One protocol line within `timeout` seconds; kills the worker otherwise."""
        deadline = time.monotonic() + timeout
        fd = self._replies.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.kill()
                    raise WorkerGone(f"worker exited (code {self.process.poll()})")
                self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_memory_mb(self) -> int | None:
        """The worker's peak resident set (Linux), for REPORT's Max Memory Used."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
        return None if kib is None else math.ceil(kib / 1024)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for pipe in (self._requests, self._replies):
            try:
                pipe.close()
            except OSError:
                pass


@dataclass
class Pool:
    """The warm workers of one function version with one configuration."""

    spec: FunctionSpec
    session: Session  # the role's credentials its workers were started with
    idle: list[Worker] = field(default_factory=list)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(MAX_WORKERS_PER_FUNCTION))
    retired: bool = False


class LambdaRunner:
    def __init__(self, endpoint_url: str, cache_dir: Path, log_dir: Path) -> None:
        self.endpoint_url = endpoint_url
        self.cache = CodeCache(cache_dir)
        self.log_dir = log_dir
        self.sessions = RoleSessions(self._sts)
        self._sts_clients: dict[str, Any] = {}
        self._pools: dict[tuple[str, str, str, str], Pool] = {}
        self._workers: set[Worker] = set()  # every live worker, idle or busy, for close()
        self._lock = threading.Lock()
        self._logs_lock = threading.Lock()  # moto's logs backend is not thread-safe

    # --- the hook -------------------------------------------------------------------------------
    def run(self, fn: Any, event: Any) -> tuple[str, bool, str]:
        """Invoke moto's LambdaFunction `fn`; returns what `_invoke_lambda` must return."""
        if isinstance(event, (str, bytes)):
            try:
                event = json.loads(event)
            except ValueError:
                pass
        spec = self._spec_of(fn)
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            reply = self._invoke(fn, spec, event, request_id)
        except Throttled:
            lambda_metrics.publish(fn.account_id, spec.region, spec.name, "", None, error=False, throttled=True)
            raise throttle_error() from None  # no START/END: a throttled request never reaches the function
        except Exception as exc:  # the runner itself failed: surface it like Lambda's service errors
            log.exception("lambda runner failed for %s", spec.name)
            reply = {"error": {"errorType": "Sandbox.RunnerError", "errorMessage": str(exc),
                               "stackTrace": traceback.format_tb(exc.__traceback__)}, "logs": ""}
        duration_ms = (time.monotonic() - started) * 1000
        logs = (
            f"START RequestId: {request_id} Version: {spec.version}\n{reply.get('logs', '')}"
            f"END RequestId: {request_id}\n"
            f"{report_line(request_id, duration_ms, spec.memory, reply.get('max_memory_mb'), reply.get('init_ms'))}\n"
        )
        self._save_logs(fn.logs_backend, spec.log_group, reply.get("log_stream") or spec.new_log_stream(), logs)
        lambda_metrics.publish(fn.account_id, spec.region, spec.name, logs, duration_ms, error="error" in reply,
                               throttled=False)
        if "error" in reply:
            return json.dumps(reply["error"]), True, logs
        return reply["payload"], False, logs

    def _invoke(self, fn: Any, spec: FunctionSpec, event: Any, request_id: str) -> dict[str, Any]:
        pool = self._pool_for(spec, self.sessions.get(spec.role, spec.name, spec.region))
        if not pool.slots.acquire(blocking=False):
            raise Throttled(spec.name)
        try:
            return self._invoke_in(fn, pool, event, request_id)
        finally:
            pool.slots.release()

    def _invoke_in(self, fn: Any, pool: Pool, event: Any, request_id: str) -> dict[str, Any]:
        spec = pool.spec
        worker = self._take_worker(fn, pool)
        if worker.init_error:
            return {"error": worker.init_error, "logs": worker.init_logs, "log_stream": worker.log_stream}
        context = {
            "function_name": spec.name,
            "function_version": spec.version,
            "invoked_function_arn": spec.arn,
            "memory_limit_in_mb": spec.memory,
            "aws_request_id": request_id,
            "log_group_name": spec.log_group,
            "log_stream_name": worker.log_stream,
        }
        environment: dict[str, Any] = {"log_stream": worker.log_stream}
        if worker.cold:  # the first invocation of an environment reports its init
            environment["init_ms"] = worker.init_seconds * 1000
            worker.cold = False
        try:
            reply = worker.invoke(event, context)
        except TimeoutError:
            stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            return {"error": {"errorType": TIMEOUT_ERROR,
                              "errorMessage": f"RequestId: {request_id} Error: Task timed out after {spec.timeout:.2f} seconds",
                              "stackTrace": []},
                    "logs": f"{stamp} {request_id} Task timed out after {spec.timeout:.2f} seconds\n",
                    **environment}
        except WorkerGone as exc:
            return {"error": {"errorType": "Runtime.ExitError", "errorMessage": str(exc), "stackTrace": []},
                    "logs": "", **environment}
        if worker.init_logs:
            reply["logs"] = worker.init_logs + reply.get("logs", "")
            worker.init_logs = ""
        reply.update(environment, max_memory_mb=worker.peak_memory_mb())
        self._release(pool, worker)
        return reply

    # --- pools and workers ----------------------------------------------------------------------
    def _pool_for(self, spec: FunctionSpec, session: Session) -> Pool:
        with self._lock:
            pool = self._pools.get(spec.pool_key)
            if pool is not None and pool.spec == spec and pool.session == session:
                return pool
            if pool is not None:  # code, configuration or credentials changed: the old workers must go
                self._retire(pool)
            pool = self._pools[spec.pool_key] = Pool(spec, session)
            return pool

    def _take_worker(self, fn: Any, pool: Pool) -> Worker:
        with self._lock:
            while pool.idle:
                worker = pool.idle.pop()
                if worker.alive:
                    return worker
        return self._start_worker(fn, pool)

    def _release(self, pool: Pool, worker: Worker) -> None:
        with self._lock:
            if pool.retired or not worker.alive:
                worker.kill()
            else:
                pool.idle.append(worker)

    @staticmethod
    def _retire(pool: Pool) -> None:
        pool.retired = True
        for worker in pool.idle:
            worker.kill()
        pool.idle.clear()

    def _start_worker(self, fn: Any, pool: Pool) -> Worker:
        spec = pool.spec
        code_dir = self.cache.extract("code", spec.code_hash, fn.code_bytes)
        paths = [str(code_dir)]
        for layer in self._layers_of(fn):
            layer_dir = self.cache.extract("layers", _hex_of(layer.code_sha_256), layer.code_bytes)
            paths += layer_paths(layer_dir)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "PYTHONUNBUFFERED": "1",
            **dict(spec.environment),
            # Lambda reserves these; the function cannot override them.
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **pool.session.environment(),
            # Never let a developer's real AWS profile or endpoint settings leak into the sandbox.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        log_file = self.log_dir / f"{spec.name}.log"
        worker = Worker(spec, code_dir, paths, env, log_file)
        with self._lock:
            self._workers = {w for w in self._workers if w.alive} | {worker}
        log.info("started worker for %s:%s in %.0f ms", spec.name, spec.version, worker.init_seconds * 1000)
        return worker

    @staticmethod
    def _layers_of(fn: Any) -> list[Any]:
        from moto.awslambda.models import get_backend

        backend = get_backend(fn.account_id, fn.region)
        return [backend.layers_versions_by_arn(layer["Arn"]) for layer in fn.layers]

    def _spec_of(self, fn: Any) -> FunctionSpec:
        layers = self._layers_of(fn)
        return FunctionSpec(
            account=fn.account_id,
            region=fn.region,
            name=fn.function_name,
            version=str(fn.version),
            arn=fn.function_arn,
            role=fn.role,
            handler=fn.handler or "",
            runtime=fn.run_time or "python3.11",
            memory=int(fn.memory_size),
            timeout=float(fn.timeout),
            code_hash=_hex_of(fn.code_sha_256),
            layer_hashes=tuple(_hex_of(layer.code_sha_256) for layer in layers),
            environment=tuple(sorted((k, str(v)) for k, v in (fn.environment_vars or {}).items())),
        )

    def _sts(self, region: str) -> Any:
        """STS with the operator's credentials, which the emulator never holds to a policy."""
        if region not in self._sts_clients:
            import boto3

            self._sts_clients[region] = boto3.client(
                "sts", region_name=region, endpoint_url=self.endpoint_url,
                aws_access_key_id="testing", aws_secret_access_key="testing")
        return self._sts_clients[region]

    def _save_logs(self, backend: Any, group: str, stream: str, logs: str) -> None:
        """As Lambda's log delivery: a missing group is created untagged and never expiring, a
        missing stream is created, then each line is an event."""
        now_ms = int(time.time() * 1000)
        try:
            with self._logs_lock:
                if group not in backend.groups:
                    backend.ensure_log_group(group)
                    # moto keeps a deleted group's tags under its ARN; Lambda's new group has none.
                    backend.tagger.delete_all_tags_for_resource(backend.groups[group].arn)
                if stream not in backend.groups[group].streams:
                    backend.create_log_stream(group, stream)
                backend.put_log_events(group, stream, [{"timestamp": now_ms, "message": line}
                                                       for line in logs.splitlines()])
        except Exception:  # logs are a convenience; never fail an invocation over them
            log.exception("could not store logs in %s", group)

    def close(self) -> None:
        with self._lock:
            for pool in self._pools.values():
                pool.retired = True
            self._pools.clear()
            for worker in self._workers:
                worker.kill()
            self._workers.clear()


def install(endpoint_url: str, cache_dir: Path, log_dir: Path) -> LambdaRunner:
    """Route every moto Lambda invocation in this process through a new runner."""
    from moto.awslambda.models import LambdaFunction

    runner = LambdaRunner(endpoint_url, cache_dir, log_dir)

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        return runner.run(self, {} if event is None else event)

    LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]  # the runner replaces moto's invocation
    return runner
