"""Two runs at once, with real processes and a real sandbox: a second `up` while one runs exits 3 and
names the holder; an `up` while `teardown` runs is refused the same way. Both holders are caught
while they start the sandbox daemon (seconds), holding the lock."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.prove.support import new_project, run, start, stop_sandbox

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-conc"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = new_project(tmp_path, DEPLOYMENT)
    yield path
    stop_sandbox(path)


def wait_holder(project: Path, pid: int, timeout: float = 60) -> None:
    """Until the lock record names `pid`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((project / ".radstream" / "lock.json").read_text())["pid"] == pid:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"PID {pid} never took the lock")


def wait_phase_recorded(project: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads((project / ".radstream" / "state.json").read_text())["phases"]:
                return
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    raise AssertionError("the run never recorded a phase")


def test_second_up_and_up_during_teardown_exit_3_naming_the_holder(project: Path):
    first = start(project, "up", "--yes", "--json")
    try:
        wait_holder(project, first.pid)
        second = run(project, "up", "--yes", "--json")
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.code == 3, second.stdout + second.stderr
        error = second.json["error"]
        assert "`up`" in error and f"PID {first.pid}" in error
        wait_phase_recorded(project)  # so there is something for the teardown to do
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    stop_sandbox(project)  # so the teardown starts it again, holding the lock while it does

    teardown = start(project, "teardown", "--yes", "--json")
    try:
        wait_holder(project, teardown.pid)  # it took over the killed run's stale lock
        refused = run(project, "up", "--yes", "--json")
        assert teardown.poll() is None, "teardown ended before the up was refused"
        assert refused.code == 3
        assert "`teardown`" in refused.json["error"] and f"PID {teardown.pid}" in refused.json["error"]
    finally:
        out, err = teardown.communicate(timeout=600)
    assert teardown.returncode == 0, err[-3000:]
    assert json.loads(out)["leftovers"] == []
