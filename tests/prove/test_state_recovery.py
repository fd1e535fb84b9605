"""The state file of a real deployment (the suite's reference), damaged three ways through the real
CLI: a truncated and a newer-schema file stop `up` with exit 2 and are left untouched, and the
documented recovery — `cp state.json.bak state.json` — gives a state the next `up` accepts and
finds converged. (A corrupt file on a fresh project, a kill mid-write and the unit cases are in
tests/integration/test_cli_core.py and tests/unit/test_state.py.)"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.prove.support import run

pytestmark = pytest.mark.slow


@pytest.fixture
def state(reference):
    path = reference.state_dir / "state.json"
    good = path.read_bytes()
    yield path
    path.write_bytes(good)  # the reference stays usable whatever happens here


def damaged(state, content: bytes, reference) -> tuple[int, str]:
    state.write_bytes(content)
    result = run(reference.project, "up", "--yes", "--json")
    assert state.read_bytes() == content, "a damaged state file must be left untouched"
    return result.code, result.json["error"]


def test_truncated_and_newer_state_stop_up_and_the_backup_restores(state, reference):
    good = state.read_bytes()
    code, error = damaged(state, good[: len(good) // 2], reference)
    assert code == 2 and "corrupt" in error and "state.json.bak" in error

    newer = json.loads(good) | {"schema_version": 99}
    code, error = damaged(state, json.dumps(newer).encode(), reference)
    assert code == 2 and "schema version 99" in error and "upgrade" in error

    code, error = damaged(state, b"", reference)
    assert code == 2 and "corrupt" in error

    # The recovery the messages point to.
    backup = state.with_name("state.json.bak")
    json.loads(backup.read_text())  # the last good version is whole
    shutil.copyfile(backup, state)
    again = run(reference.project, "up", "--yes", "--json")
    assert again.code == 0 and again.json["ok"] and again.json["mutations"] == 0, again.stdout
