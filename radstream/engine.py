"""Runs phases: resume from the first step not done, plan, apply, verify, destroy in reverse.

The state file is written after every step, so a run killed at any point resumes at the step it
was in. Each step is timed and its mutating calls counted."""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from radstream import runlog
from radstream.context import Context
from radstream.errors import ConfigError, RadstreamError
from radstream.phases.base import Phase, PhaseNotImplemented
from radstream.state import now_iso


@dataclass
class PhaseResult:
    number: int
    name: str
    status: str  # done | skipped | failed | destroyed | planned
    mutations: int = 0
    seconds: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, str]] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failure: dict[str, Any] | None = None  # where and what: step, hint, type

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        for optional in ("changes", "outputs", "failure"):
            if not data[optional]:
                data.pop(optional)
        return data


@dataclass
class RunResult:
    phases: list[PhaseResult]

    @property
    def ok(self) -> bool:
        return all(p.status != "failed" for p in self.phases)

    @property
    def mutations(self) -> int:
        return sum(p.mutations for p in self.phases)

    @property
    def error(self) -> str | None:
        return next((f"phase {p.number} ({p.name}): {p.error}" for p in self.phases if p.error), None)

    @property
    def failure(self) -> dict[str, Any]:
        """The first failure's phase, step, hint and type; empty when nothing failed."""
        failed = next((p for p in self.phases if p.status == "failed"), None)
        if failed is None:
            return {}
        return {"phase": failed.number, "step": None, "hint": None, "type": None, **(failed.failure or {})}


def describe_error(exc: BaseException) -> str:
    from radstream.failures import describe

    return describe(exc)


class Engine:
    def __init__(self, ctx: Context, phases: Sequence[Phase]):
        self.ctx = ctx
        self.phases = {p.number: p for p in phases}

    def report(self, result: RunResult) -> dict[str, Any]:
        """What `up`, `phase run|destroy`, `demo` and `teardown` print with --json."""
        return {
            "ok": result.ok,
            "target": self.ctx.config.target,
            "deployment": self.ctx.config.deployment,
            "mutations": result.mutations,
            "retries": self.ctx.counter.retries(),
            "phases": [p.to_dict() for p in result.phases],
            "error": result.error,
            **result.failure,
        }

    # -- before any change -----------------------------------------------------------------------
    def preflight(self, number: int) -> str | None:
        """What would stop phase `number` whatever the world holds (an image its nodes cannot hold),
        from the phase's optional read-only `preflight(ctx) -> str | None`. A run checks every one of
        its phases before the first changes anything; a plan shows it as the phase's failure.
        A ConfigError (a config that cannot work with what exists) stops the run or plan: exit 2."""
        phase = self.phases[number]
        check = getattr(phase, "preflight", None)
        if check is None or not phase.implemented:
            return None
        try:
            return check(self.ctx)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - what cannot be checked is not applied either
            runlog.failed(exc, f"checking phase {number}")
            return f"cannot check before changing anything: {describe_error(exc)}"

    # -- apply ----------------------------------------------------------------------------------
    def run(self, numbers: Sequence[int], dry_run: bool = False, stop_on_failure: bool = True) -> RunResult:
        if not dry_run:
            refused = [PhaseResult(n, self.phases[n].name, "failed", error=f"refused before any change: {problem}")
                       for n in numbers if (problem := self.preflight(n))]
            if refused:
                return RunResult(refused)
        results = []
        for number in numbers:
            result = self._plan_phase(number) if dry_run else self._run_phase(number)
            results.append(result)
            if result.status == "failed" and stop_on_failure:
                break
        return RunResult(results)

    def _run_phase(self, number: int) -> PhaseResult:
        ctx, state, phase = self.ctx, self.ctx.state, self.phases[number]
        result = PhaseResult(number, phase.name, "skipped")
        start, before = time.monotonic(), ctx.counter.total
        ctx.current_phase = number
        failing: str | None = None
        try:
            if not phase.implemented:
                raise PhaseNotImplemented(f"phase {number} ({phase.name}) is not built yet")
            steps = phase.steps(ctx)
            interrupted = next(
                (s.name for s in steps if state.step_status(number, s.name) in ("in_progress", "failed")), None
            )
            ctx.reporter.phase_started(number, phase.name, resumed_at=interrupted)
            entry = state.phase(number, phase.name)
            entry.update(status="in_progress", started_at=now_iso())
            state.save()
            for step in steps:
                failing = step.name
                step_result = self._run_step(number, step)
                result.steps.append(step_result)
                if step_result["status"] == "done":
                    result.status = "done"
            entry.update(status="done", finished_at=now_iso())
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, then reported
            from radstream.failures import error_fields

            result.status, result.error = "failed", describe_error(exc)
            fields = error_fields(exc)
            result.failure = {"step": failing, "hint": fields["hint"], "type": fields["type"]}
            if failing is not None:
                result.steps.append({"name": failing, "status": "failed", "error": result.error})
            state.phase(number, phase.name).update(status="failed", error=result.error, finished_at=now_iso())
            runlog.failed(exc, f"phase {number}")
            if not isinstance(exc, RadstreamError):
                ctx.reporter.log("".join(traceback.format_exception(exc)[-3:]).rstrip())
        finally:
            result.seconds = time.monotonic() - start
            result.mutations = ctx.counter.total - before
            result.outputs = dict(state.outputs(number))
            phase_entry = state.phase(number, phase.name)
            phase_entry["seconds"] = round(result.seconds, 3)
            phase_entry["mutations"] = result.mutations
            state.save()
            ctx.current_phase = None
            ctx.reporter.phase_finished(number, phase.name, result.status, result.seconds, result.mutations)
        return result

    def _run_step(self, number: int, step) -> dict[str, Any]:
        ctx, state = self.ctx, self.ctx.state
        start, before = time.monotonic(), ctx.counter.total
        ctx.reporter.step_started(number, step.name)
        previously = state.step_status(number, step.name)
        try:
            if step.check(ctx):
                status = "skipped"
            else:
                if previously == "done":
                    ctx.warn(f"phase {number} step {step.name}: the world drifted from the state file; repairing")
                # Recorded before apply: a crash from here on resumes at this very step.
                state.set_step(number, step.name, status="in_progress", started_at=now_iso())
                state.save()
                applied = step.apply(ctx)
                if applied:
                    state.add_outputs(number, applied)
                step.verify(ctx)
                status = "done"
            outputs = step.outputs(ctx)
            if outputs:
                state.add_outputs(number, outputs)
        except Exception as exc:
            seconds = time.monotonic() - start
            state.set_step(number, step.name, status="failed", error=describe_error(exc), seconds=round(seconds, 3))
            ctx.reporter.step_finished(number, step.name, "failed", seconds)
            raise
        seconds = time.monotonic() - start
        mutations = ctx.counter.total - before
        state.set_step(
            number, step.name, status="done", finished_at=now_iso(), seconds=round(seconds, 3), mutations=mutations
        )
        state.phase(number)["steps"][step.name].pop("error", None)
        state.save()
        ctx.reporter.step_finished(number, step.name, status, seconds)
        return {"name": step.name, "status": status, "seconds": round(seconds, 3), "mutations": mutations}

    # -- plan -----------------------------------------------------------------------------------
    def _plan_phase(self, number: int) -> PhaseResult:
        ctx, phase = self.ctx, self.phases[number]
        result = PhaseResult(number, phase.name, "planned")
        if not phase.implemented:
            result.status, result.error = "failed", f"phase {number} ({phase.name}) is not built yet"
            return result
        problem = self.preflight(number)
        if problem:
            result.status, result.error = "failed", problem
        planning: str | None = None
        try:
            for step in phase.steps(ctx):
                planning = step.name
                if step.check(ctx):
                    result.steps.append({"name": step.name, "status": "up to date"})
                    continue
                changes = step.plan(ctx)
                result.steps.append({"name": step.name, "status": "would change"})
                result.changes.extend(c.to_dict() | {"step": step.name} for c in changes)
        except Exception as exc:  # noqa: BLE001
            from radstream.failures import CloudError, error_fields, user_error

            if isinstance(user_error(exc), CloudError) or isinstance(exc, (TypeError, AttributeError, NameError)):
                # Credentials, permissions or a bug: the plan itself failed, and says so.
                fields = error_fields(exc)
                result.status, result.error = "failed", describe_error(exc)
                result.failure = {"step": planning, "hint": fields["hint"], "type": fields["type"]}
            else:  # a later phase often cannot be planned before the earlier ones exist
                result.error = result.error or f"cannot plan yet: {describe_error(exc)}"
        return result

    def plan(self, numbers: Sequence[int]) -> RunResult:
        return RunResult([self._plan_phase(n) for n in numbers])

    # -- drift ----------------------------------------------------------------------------------
    def refresh(self, numbers: Sequence[int]) -> list[dict[str, Any]]:
        """Re-run every check and compare with what the state file believes."""
        report = []
        for number in numbers:
            phase = self.phases[number]
            if not phase.implemented:
                continue
            steps = phase.steps(self.ctx)
            for step in steps:
                recorded = self.ctx.state.step_status(number, step.name)
                try:
                    actual = "present" if step.check(self.ctx) else "absent"
                except Exception as exc:  # noqa: BLE001
                    actual = f"unknown ({describe_error(exc)})"
                # Drift is what the state file promises and the world no longer has; a step that is
                # already satisfied but never recorded is simply adopted by the next run.
                drift = recorded == "done" and actual != "present"
                report.append(
                    {"phase": number, "step": step.name, "recorded": recorded, "actual": actual, "drift": drift}
                )
        return report

    # -- destroy --------------------------------------------------------------------------------
    def destroy(self, numbers: Sequence[int], teardown: bool = False) -> RunResult:
        """Destroy `numbers` in reverse. In a teardown (every phase goes) a step with the optional
        attribute `teardown_skips = True`, whose destroy only readies the world for a later phase's
        next run (phase 7 giving the nodegroup its size back), is not run: that phase goes too."""
        results = []
        for number in sorted(numbers, reverse=True):
            results.append(self._destroy_phase(number, teardown))
        return RunResult(results)

    def _destroy_phase(self, number: int, teardown: bool = False) -> PhaseResult:
        ctx, state, phase = self.ctx, self.ctx.state, self.phases[number]
        result = PhaseResult(number, phase.name, "destroyed")
        start, before = time.monotonic(), ctx.counter.total
        ctx.current_phase = number
        try:
            if not phase.implemented:
                result.status = "skipped"
                return result
            ctx.reporter.phase_started(number, f"{phase.name} (destroy)")
            for step in reversed(phase.steps(ctx)):
                step_start = time.monotonic()
                ctx.reporter.step_started(number, step.name)
                try:
                    if not (teardown and getattr(step, "teardown_skips", False)):
                        step.destroy(ctx)
                except Exception:
                    ctx.reporter.step_finished(number, step.name, "failed", time.monotonic() - step_start)
                    raise
                state.set_step(number, step.name, status="destroyed", finished_at=now_iso())
                state.save()
                ctx.reporter.step_finished(number, step.name, "done", time.monotonic() - step_start)
            entry = state.phase(number, phase.name)
            entry.update(status="destroyed", outputs={}, resources=[], finished_at=now_iso())
        except Exception as exc:  # noqa: BLE001
            runlog.failed(exc, f"destroying phase {number}")
            result.status, result.error = "failed", describe_error(exc)
            state.phase(number, phase.name).update(status="failed", error=result.error)
        finally:
            result.seconds = time.monotonic() - start
            result.mutations = ctx.counter.total - before
            state.save()
            ctx.current_phase = None
            if phase.implemented:
                ctx.reporter.phase_finished(number, f"{phase.name} (destroy)", result.status, result.seconds, result.mutations)
        return result
