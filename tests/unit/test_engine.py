from __future__ import annotations

from pathlib import Path

import pytest

from radstream import config
from radstream.context import Context
from radstream.engine import Engine
from radstream.phases import NotBuilt, all_phases, resolve
from radstream.phases.base import Step
from radstream.state import State
from tests.support.marker_phase import MarkerPhase, MarkerStep


def make_ctx(tmp_path: Path) -> Context:
    (tmp_path / "radstream.yaml").write_text("deployment: rs-test\n")
    loaded = config.load(tmp_path / "radstream.yaml", environ={})
    return Context(loaded, State.load(loaded.state_dir, "rs-test", "sandbox"))


def applies(world: Path) -> list[str]:
    log = world / "applies.log"
    return log.read_text().split() if log.exists() else []


def test_first_run_applies_every_step_and_records_outputs(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    result = Engine(ctx, [MarkerPhase(world)]).run([0])
    assert result.ok and result.mutations == 3
    assert [s["status"] for s in result.phases[0].steps] == ["done", "done", "done"]
    saved = State.load(ctx.state_dir, "rs-test", "sandbox")
    assert saved.phase_status(0) == "done"
    assert saved.outputs(0)["beta_output"] == "value-of-beta"


def test_second_run_on_a_converged_world_changes_nothing(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    Engine(ctx, [MarkerPhase(world)]).run([0])
    again = Engine(ctx, [MarkerPhase(world)]).run([0])
    assert again.mutations == 0
    assert again.phases[0].status == "skipped"
    assert applies(world) == ["alpha", "beta", "gamma"]


def test_drift_is_detected_by_refresh_and_repaired_by_the_next_run(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    engine = Engine(ctx, [MarkerPhase(world)])
    engine.run([0])
    (world / "beta.exists").unlink()
    drift = engine.refresh([0])
    assert [d["step"] for d in drift if d["drift"]] == ["beta"]
    result = engine.run([0])
    assert result.mutations == 1 and applies(world)[-1] == "beta"


class Exploding(Step):
    name = "explodes"

    def apply(self, ctx):
        raise RuntimeError("boom")


def test_a_failing_step_stops_the_phase_and_is_recorded(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()

    class Mixed(MarkerPhase):
        def steps(self, ctx):
            return [MarkerStep(world, "alpha"), Exploding(), MarkerStep(world, "gamma")]

    result = Engine(ctx, [Mixed(world)]).run([0])
    assert not result.ok
    assert "RuntimeError: boom" in result.error
    assert applies(world) == ["alpha"]
    state = State.load(ctx.state_dir, "rs-test", "sandbox")
    assert state.step_status(0, "explodes") == "failed"
    assert state.phase_status(0) == "failed"


def test_plan_lists_only_what_would_change_and_changes_nothing(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    (world / "alpha.exists").touch()
    result = Engine(ctx, [MarkerPhase(world)]).plan([0])
    assert [c["name"] for c in result.phases[0].changes] == ["beta", "gamma"]
    assert applies(world) == []


def test_destroy_runs_steps_in_reverse_and_is_quiet_when_gone(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    engine = Engine(ctx, [MarkerPhase(world)])
    engine.run([0])
    assert engine.destroy([0]).ok
    assert not list(world.glob("*.exists"))
    assert engine.destroy([0]).ok
    assert State.load(ctx.state_dir, "rs-test", "sandbox").phase_status(0) == "destroyed"


def test_phases_not_built_fail_honestly(tmp_path: Path):
    ctx = make_ctx(tmp_path)
    result = Engine(ctx, [NotBuilt(5, "telemetry", "")]).run([5])
    assert not result.ok and "not built yet" in result.error


def test_registry_has_eight_ordered_phases_resolvable_by_number_or_name():
    phases = all_phases()
    assert [p.number for p in phases] == list(range(8))
    assert [p.name for p in phases] == [
        "foundation", "nodegroup", "triton", "expose", "wiring", "telemetry", "demo", "cleanup"
    ]
    assert resolve("expose") == 3 and resolve("3") == 3
    with pytest.raises(Exception, match="unknown phase"):
        resolve("nine")


def test_a_wait_with_a_ceiling_backs_off_and_one_without_keeps_its_pace(tmp_path: Path, monkeypatch):
    from radstream import context as context_mod

    slept: list[float] = []
    monkeypatch.setattr(context_mod.time, "sleep", slept.append)
    ctx = make_ctx(tmp_path)
    answers = iter([None] * 6 + ["done"])
    assert ctx.wait("backing off", lambda: next(answers), timeout=3600, interval=1.0, max_interval=3.0) == "done"
    assert slept == [1.0, 1.5, 2.25, 3.0, 3.0, 3.0]
    slept.clear()
    answers = iter([None, None, "done"])
    ctx.wait("steady", lambda: next(answers), timeout=3600, interval=2.0)
    assert slept == [2.0, 2.0]
