"""The persisted state file and the lock that guards it.

`.radstream/state.json` records, per phase and step, the status, timestamps, outputs and resources
created. It is written atomically (temp file, fsync, rename) after every step and the previous good
version is kept as `state.json.bak`. A corrupt or newer-schema file stops the command and is left
untouched: it is never silently reset. No secret is ever written here."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radstream.errors import LockHeld, StateError

if TYPE_CHECKING:
    from filelock import BaseFileLock

SCHEMA_VERSION = 1
STATE_FILE = "state.json"
BACKUP_SUFFIX = ".bak"
LOCK_FILE = "lock"
LOCK_INFO_FILE = "lock.json"

# Keys whose values must never reach the state file or logs.
SECRET_MARKERS = ("token", "password", "secret", "authorization", "credential", "access_key")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON so a reader (or a crash) only ever sees the old or the new complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def scrub(value: Any) -> Any:
    """Drop secret-looking keys from outputs before they are persisted."""
    if isinstance(value, dict):
        return {
            k: ("<redacted>" if any(m in str(k).lower() for m in SECRET_MARKERS) else scrub(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def empty_state(deployment: str, target: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "deployment": deployment,
        "target": target,
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "phases": {},
    }


class State:
    """The state document plus the methods phases and the engine use to update it."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.data = data

    # -- loading and saving -------------------------------------------------------------------
    @classmethod
    def load(cls, state_dir: Path, deployment: str, target: str) -> State:
        path = state_dir / STATE_FILE
        if not path.exists():
            return cls(path, empty_state(deployment, target))
        data = read_state_file(path)
        if data.get("deployment") != deployment or data.get("target") != target:
            raise StateError(
                f"{path} belongs to deployment {data.get('deployment')!r} on target {data.get('target')!r}, "
                f"but the config says {deployment!r} on {target!r}",
                hint="use the matching config, or move the .radstream directory away to start a new deployment",
            )
        return cls(path, data)

    def save(self) -> None:
        self.data["updated_at"] = now_iso()
        if self.path.exists():
            # Keep the last good state, so a bad edit or a bug can be undone by hand. A hard link
            # keeps the current file in place: a kill at any point still leaves state.json whole.
            try:
                read_state_file(self.path)
                link = self.path.with_name(f".{STATE_FILE}{BACKUP_SUFFIX}.{os.getpid()}")
                link.unlink(missing_ok=True)
                os.link(self.path, link)
                os.replace(link, self.path.with_name(STATE_FILE + BACKUP_SUFFIX))
            except StateError:
                pass
        atomic_write_json(self.path, self.data)

    # -- phases and steps -----------------------------------------------------------------------
    def phase(self, number: int, name: str | None = None) -> dict[str, Any]:
        entry = self.data["phases"].setdefault(
            str(number), {"name": name, "status": "pending", "steps": {}, "outputs": {}, "resources": []}
        )
        if name:
            entry["name"] = name
        return entry

    def phase_status(self, number: int) -> str:
        return self.data["phases"].get(str(number), {}).get("status", "pending")

    def step_status(self, number: int, step: str) -> str:
        return self.data["phases"].get(str(number), {}).get("steps", {}).get(step, {}).get("status", "pending")

    def set_step(self, number: int, step: str, **fields: Any) -> None:
        self.phase(number)["steps"].setdefault(step, {}).update(fields)

    def outputs(self, number: int) -> dict[str, Any]:
        return self.data["phases"].get(str(number), {}).get("outputs", {})

    def add_outputs(self, number: int, outputs: dict[str, Any]) -> None:
        self.phase(number)["outputs"].update(scrub(outputs))

    def record_resource(self, number: int, type_: str, id_: str, arn: str | None = None) -> None:
        resources = self.phase(number)["resources"]
        entry = {"type": type_, "id": id_, "arn": arn}
        if entry not in resources:
            resources.append(entry)

    def all_outputs(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for number in sorted(self.data["phases"], key=int):
            merged.update(self.data["phases"][number].get("outputs", {}))
        return merged


def read_state_file(path: Path) -> dict[str, Any]:
    """Parse and check a state file; never modifies it."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateError(
            f"{path} is corrupt ({exc}); it was left untouched",
            hint=f"restore the last good copy with `cp {path}{BACKUP_SUFFIX} {path}`, or move it away to start over",
        ) from None
    if not isinstance(data, dict) or "schema_version" not in data or not isinstance(data.get("phases"), dict):
        raise StateError(
            f"{path} is not a RadStream state file; it was left untouched",
            hint=f"restore {path}{BACKUP_SUFFIX} or move the file away",
        )
    version = data["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise StateError(
            f"{path} has schema version {version!r}, newer than this RadStream understands ({SCHEMA_VERSION})",
            hint="upgrade radstream; the file was left untouched",
        )
    return data


# -- the lock -------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DeploymentLock:
    """One run at a time per deployment.

    The exclusion itself is an OS file lock (released by the kernel when the holder dies, even on
    SIGKILL); next to it `lock.json` records who holds it — command, PID, host, time — so a refused
    run can name the holder, and a leftover record whose PID is gone is reported as a stale lock
    taken over."""

    def __init__(self, state_dir: Path, command: str):
        self.state_dir = state_dir
        self.command = command
        self.info_path = state_dir / LOCK_INFO_FILE
        self.taken_over: dict[str, Any] | None = None
        self._lock: BaseFileLock | None = None

    def holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.info_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def acquire(self) -> DeploymentLock:
        from filelock import FileLock, Timeout

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.state_dir / LOCK_FILE))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self.holder() or {}
            raise LockHeld(
                f"another run holds the lock: `{holder.get('command', '?')}` (PID {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')})",
                hint="wait for it to finish; if it is truly gone, `radstream unlock` removes the lock",
            ) from None
        previous = self.holder()
        if previous and not (previous.get("host") == socket.gethostname() and _pid_alive(int(previous.get("pid", 0)))):
            self.taken_over = previous
        atomic_write_json(
            self.info_path,
            {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(), "since": now_iso(), "time": time.time()},
        )
        return self

    def release(self) -> None:
        if self._lock is not None and self._lock.is_locked:
            self.info_path.unlink(missing_ok=True)
            self._lock.release()

    def __enter__(self) -> DeploymentLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def force_unlock(state_dir: Path) -> dict[str, Any] | None:
    """Remove the holder record (the OS lock itself dies with its process). Returns the old holder."""
    info = state_dir / LOCK_INFO_FILE
    try:
        holder = json.loads(info.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        holder = None
    info.unlink(missing_ok=True)
    return holder
