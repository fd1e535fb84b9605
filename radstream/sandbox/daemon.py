"""The sandbox daemon: one detached process hosting every sandbox service.

`start` launches `python -m radstream.sandbox` in its own session and returns once the daemon has
written `<state_dir>/sandbox.json` (endpoints, pid, log paths, and the access key the Kubernetes emulator
admits — hence mode 0600; clients must not print it). The daemon holds an exclusive lock
on `<state_dir>/sandbox.pid` for its whole life, so "running" means "the lock is held" — immune to
PID reuse and to zombies. `stop` sends SIGTERM, waits, then SIGKILLs the daemon's session."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENDPOINT_KEYS = ("aws_endpoint", "kubernetes_endpoint", "triton_http", "triton_grpc", "prometheus")
# Everything services publish into sandbox.json: endpoints, the CA certificate that verifies the
# Kubernetes one, the OCI registry ("127.0.0.1:P") with the base image seeded in it, and the access
# key the emulator admits (a secret: never print it).
PUBLISHED_KEYS = (*ENDPOINT_KEYS, "kubernetes_ca", "registry", "base_image", "kubernetes_access_key_id")
STATE_FILE = "sandbox.json"
PID_FILE = "sandbox.pid"
DAEMON_LOG = "sandbox.log"


class SandboxError(RuntimeError):
    pass


# --- files -----------------------------------------------------------------------------------------
def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Owner-only (0600): it holds a secret."""
    from radstream.private_file import write_private

    write_private(path, json.dumps(data, indent=2).encode())


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _lock_held(pid_file: Path) -> bool:
    try:
        handle = open(pid_file)
    except FileNotFoundError:
        return False
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def _pid_of(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


# --- client side -----------------------------------------------------------------------------------
def status(state_dir: Path) -> dict[str, Any]:
    state_dir = Path(state_dir)
    recorded = _read_json(state_dir / STATE_FILE) or {}
    result: dict[str, Any] = {"running": False, "pid": None, **{key: None for key in PUBLISHED_KEYS},
                              "logs": {}, "started_at": None}
    result.update(recorded)
    result["running"] = bool(recorded.get("running")) and _lock_held(state_dir / PID_FILE)
    return result


def start(
    state_dir: Path, timeout: float = 60.0, region: str = "us-east-1", aws_endpoint_url: str | None = None
) -> dict[str, Any]:
    """Start the daemon unless it runs already; returns its status once every service is up."""
    state_dir = Path(state_dir).resolve()
    current = status(state_dir)
    if current["running"]:
        return current
    if _lock_held(state_dir / PID_FILE):
        raise SandboxError(f"a sandbox daemon (pid {_pid_of(state_dir)}) is starting or stopping in {state_dir}; retry, or run `radstream sandbox stop`")
    log_dir = state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / STATE_FILE).unlink(missing_ok=True)

    command = [sys.executable, "-m", "radstream.sandbox", "--state-dir", str(state_dir), "--region", region]
    if aws_endpoint_url:
        command += ["--aws-endpoint-url", aws_endpoint_url]
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    with open(log_dir / DAEMON_LOG, "ab") as daemon_log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # survives the CLI and its terminal; stop() signals the session
            close_fds=True,
            cwd=state_dir,
            env=env,
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = status(state_dir)
        if current["running"] and current["pid"] == process.pid:
            return current
        if process.poll() is not None:
            raise SandboxError(
                f"the sandbox daemon exited with code {process.returncode} while starting; "
                f"see {log_dir / DAEMON_LOG}:\n{tail_log(log_dir / DAEMON_LOG)}"
            )
        time.sleep(0.1)
    stop(state_dir)
    raise SandboxError(f"the sandbox did not come up within {timeout:.0f} s; see {log_dir / DAEMON_LOG}")


def stop(state_dir: Path, timeout: float = 30.0) -> dict[str, Any]:
    """Stop the daemon and everything it started. Quiet when nothing runs."""
    state_dir = Path(state_dir).resolve()
    pid = _pid_of(state_dir)
    if pid is not None and _lock_held(state_dir / PID_FILE):
        _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _lock_held(state_dir / PID_FILE) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _lock_held(state_dir / PID_FILE):
            log.warning("sandbox daemon %s ignored SIGTERM for %.0f s; killing it", pid, timeout)
            try:
                os.killpg(pid, signal.SIGKILL)  # its session: the daemon and every child it started
            except ProcessLookupError:  # run in the foreground, so it leads no group of its own
                _signal(pid, signal.SIGKILL)
            while _lock_held(state_dir / PID_FILE):
                time.sleep(0.05)
        _wait_gone(pid, timeout=5.0)
    recorded = _read_json(state_dir / STATE_FILE)
    if recorded and recorded.get("running"):
        _write_json(state_dir / STATE_FILE, {**recorded, "running": False})
    return status(state_dir)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float) -> None:
    """The lock goes with the daemon's files, a moment before the process itself ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # When this process launched the daemon it is our child: reap it, no zombie lingers.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def tail_log(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# --- daemon side -----------------------------------------------------------------------------------
def serve(options: Any) -> int:
    """Run every service in the foreground until SIGTERM/SIGINT; returns the exit code."""
    from radstream.sandbox.services import build_services

    state_dir = Path(options.state_dir).resolve()
    (state_dir / "logs").mkdir(parents=True, exist_ok=True)  # also when run in the foreground
    pid_handle = open(state_dir / PID_FILE, "a+")
    try:
        fcntl.flock(pid_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.error("another sandbox daemon already runs in %s", state_dir)
        return 1
    pid_handle.seek(0)
    pid_handle.truncate()
    pid_handle.write(f"{os.getpid()}\n")
    pid_handle.flush()

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    started: list[Any] = []
    state_file = state_dir / STATE_FILE
    code = 0
    try:
        endpoints: dict[str, str] = {}  # filled as services start; later services read earlier ones'
        logs = {"daemon": str(state_dir / "logs" / DAEMON_LOG)}
        for service in build_services(options, endpoints):
            if stopping.is_set():
                break
            log.info("starting %s", service.name)
            began = time.monotonic()
            started.append(service)  # before start(): one failing halfway is still stopped
            endpoints.update(service.start())
            log.info("started %s in %.1f s", service.name, time.monotonic() - began)
            logs.update(getattr(service, "logs", {}))
        if not stopping.is_set():
            _write_json(state_file, {
                "pid": os.getpid(),
                "running": True,
                **{key: endpoints.get(key) for key in PUBLISHED_KEYS},
                "logs": logs,
                "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            })
            log.info("sandbox ready: %s", {k: v for k, v in endpoints.items() if k != "kubernetes_access_key_id"})
        while not stopping.wait(1.0):
            pass
    except Exception:
        log.exception("sandbox failed")
        code = 1
    finally:
        for service in reversed(started):
            try:
                began = time.monotonic()
                service.stop()
                log.info("stopped %s in %.1f s", service.name, time.monotonic() - began)
            except Exception:
                log.exception("stopping %s failed", service.name)
        recorded = _read_json(state_file)
        if recorded:
            _write_json(state_file, {**recorded, "running": False})
        log.info("sandbox stopped")
    return code
