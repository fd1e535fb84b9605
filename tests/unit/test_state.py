from __future__ import annotations

import json
from pathlib import Path

import pytest

from radstream.errors import LockHeld, StateError
from radstream.state import SCHEMA_VERSION, DeploymentLock, State, force_unlock, scrub


def test_new_state_is_saved_atomically_with_a_backup_of_the_previous(tmp_path: Path):
    state = State.load(tmp_path, "dep", "sandbox")
    state.add_outputs(0, {"endpoint": "http://x"})
    state.save()
    first = json.loads((tmp_path / "state.json").read_text())
    assert first["schema_version"] == SCHEMA_VERSION
    state.add_outputs(0, {"endpoint": "http://y"})
    state.save()
    assert json.loads((tmp_path / "state.json.bak").read_text())["phases"]["0"]["outputs"]["endpoint"] == "http://x"
    assert State.load(tmp_path, "dep", "sandbox").outputs(0)["endpoint"] == "http://y"
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"schema_version": 1, "phases": {', "corrupt"),
        ("", "corrupt"),
        ('["not", "a", "state"]', "not a RadStream state file"),
        (json.dumps({"schema_version": SCHEMA_VERSION + 1, "phases": {}}), "newer"),
    ],
)
def test_bad_state_files_stop_with_a_clear_error_and_are_left_untouched(tmp_path: Path, content, message):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(StateError, match=message) as caught:
        State.load(tmp_path, "dep", "sandbox")
    assert caught.value.exit_code == 2
    assert path.read_text() == content


def test_state_of_another_deployment_is_refused(tmp_path: Path):
    State.load(tmp_path, "one", "sandbox").save()
    with pytest.raises(StateError, match="belongs to deployment 'one'"):
        State.load(tmp_path, "two", "sandbox")


def test_secrets_never_reach_the_state(tmp_path: Path):
    state = State.load(tmp_path, "dep", "sandbox")
    state.add_outputs(2, {"registry": {"password": "hunter2", "host": "r"}, "kubernetes_token": "abc"})
    state.save()
    text = (tmp_path / "state.json").read_text()
    assert "hunter2" not in text and "abc" not in text
    assert scrub({"a": [{"Token": "x"}]}) == {"a": [{"Token": "<redacted>"}]}


def test_lock_excludes_a_second_holder_and_names_the_first(tmp_path: Path):
    with DeploymentLock(tmp_path, "up"):
        with pytest.raises(LockHeld) as caught:
            DeploymentLock(tmp_path, "teardown").acquire()
    assert "`up`" in str(caught.value) and "PID" in str(caught.value)
    assert caught.value.exit_code == 3
    # Released: the next run gets it and sees no stale holder.
    with DeploymentLock(tmp_path, "teardown") as lock:
        assert lock.taken_over is None


def test_lock_record_of_a_dead_process_is_taken_over(tmp_path: Path):
    import socket

    (tmp_path / "lock.json").write_text(json.dumps({"command": "up", "pid": 2**22 + 7, "host": socket.gethostname()}))
    with DeploymentLock(tmp_path, "up") as lock:
        assert lock.taken_over["pid"] == 2**22 + 7
    assert force_unlock(tmp_path) is None
