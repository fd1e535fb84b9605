"""The core promises, with real processes: resume after SIGKILL, the lock, corrupt state, bad config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env


def start_engine(project: Path, world: Path, slow: str | None = None, pause: float = 0.0) -> subprocess.Popen:
    args = [sys.executable, "-m", "tests.support.run_engine", str(project / "radstream.yaml"), str(world)]
    if slow:
        args += [slow, str(pause)]
    return subprocess.Popen(args, cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture
def world(project: Path) -> Path:
    path = project / "world"
    path.mkdir()
    return path


def test_phase_list_json_lists_the_eight_phases(run_cli):
    result = run_cli("phase", "list", "--json")
    assert result.code == 0, result.stderr
    assert [(p["number"], p["name"]) for p in result.json["phases"]] == [
        (0, "foundation"), (1, "nodegroup"), (2, "triton"), (3, "expose"),
        (4, "wiring"), (5, "telemetry"), (6, "demo"), (7, "cleanup"),
    ]


def test_global_options_before_a_subcommand_are_honoured(run_cli, project: Path, tmp_path_factory):
    status = run_cli("--json", "sandbox", "status")
    assert status.code == 0 and status.json["running"] is False  # one JSON object, not the human line
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "radstream.yaml").write_text("target: sandbox\ndeployment: rs-elsewhere\n")
    for args in (("-c", str(elsewhere / "radstream.yaml"), "--json", "status"),
                 ("--json", "-c", str(elsewhere / "radstream.yaml"), "status")):
        found = run_cli(*args)
        assert found.code == 0 and found.json["deployment"] == "rs-elsewhere", args


def test_invalid_config_exits_2_naming_the_field_and_changes_nothing(run_cli, project: Path):
    (project / "radstream.yaml").write_text("target: sandbox\nnodegroup:\n  instance_type: 'not a type'\n")
    result = run_cli("up", "--yes", "--json")
    assert result.code == 2
    assert "nodegroup.instance_type" in result.json["error"]
    assert not (project / ".radstream").exists()


def test_corrupt_state_exits_2_and_is_left_untouched(run_cli, project: Path):
    state = project / ".radstream" / "state.json"
    state.parent.mkdir()
    state.write_text('{"schema_version": 1, "phases": {"0": ')
    before = state.read_bytes()
    result = run_cli("phase", "run", "0", "--yes", "--json")
    assert result.code == 2
    assert "corrupt" in result.json["error"]
    assert state.read_bytes() == before


def test_run_killed_mid_step_resumes_at_that_step(project: Path, world: Path):
    victim = start_engine(project, world, slow="beta", pause=60)
    wait_for(world / "beta.started")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    state = json.loads((project / ".radstream" / "state.json").read_text())
    assert state["phases"]["0"]["steps"]["alpha"]["status"] == "done"
    assert state["phases"]["0"]["steps"]["beta"]["status"] == "in_progress"

    rerun = start_engine(project, world)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    steps = {s["name"]: s["status"] for s in json.loads(out)["phases"][0]["steps"]}
    assert steps == {"alpha": "skipped", "beta": "done", "gamma": "done"}
    assert (world / "applies.log").read_text().split() == ["alpha", "beta", "beta", "gamma"]


def test_second_concurrent_run_exits_3_naming_the_holder(project: Path, world: Path, run_cli):
    holder = start_engine(project, world, slow="alpha", pause=60)
    try:
        wait_for(world / "alpha.started")
        result = run_cli("phase", "run", "0", "--yes", "--json")
        assert result.code == 3
        assert "run_engine" in result.json["error"] and f"PID {holder.pid}" in result.json["error"]
    finally:
        holder.kill()
        holder.wait()


def test_stale_lock_of_a_killed_run_is_taken_over(project: Path, world: Path, run_cli):
    victim = start_engine(project, world, slow="alpha", pause=60)
    wait_for(world / "alpha.started")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert json.loads((project / ".radstream" / "lock.json").read_text())["pid"] == victim.pid

    rerun = start_engine(project, world)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0
    assert f"took over stale lock of PID {victim.pid}" in err
    assert not (project / ".radstream" / "lock.json").exists()


def test_unlock_removes_a_dead_holder_and_refuses_a_live_one(project: Path, world: Path, run_cli):
    victim = start_engine(project, world, slow="alpha", pause=60)
    wait_for(world / "alpha.started")
    try:
        assert run_cli("unlock", "--json").code == 3
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    result = run_cli("unlock", "--json")
    assert result.code == 0
    assert result.json["removed"]["pid"] == victim.pid


WRITER = """
import sys
from pathlib import Path
from radstream.state import State
state = State.load(Path(sys.argv[1]), "dep", "sandbox")
i = 0
while True:
    i += 1
    state.add_outputs(0, {"counter": i, "padding": "x" * 200_000})
    state.save()
"""


def test_kill_during_state_writes_never_leaves_a_partial_file(tmp_path: Path):
    state_file = tmp_path / "state.json"
    for attempt in range(8):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], cwd=REPO, env=cli_env())
        wait_for(state_file)
        time.sleep(0.05 + attempt * 0.037)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        data = json.loads(state_file.read_text())
        assert data["phases"]["0"]["outputs"]["counter"] >= 1
        assert json.loads((tmp_path / "state.json.bak").read_text())["schema_version"] == 1
