"""Load-test logic without a cloud: option parsing, schedules, the submit-and-poll loop on a
simulated clock, statistics and exports; and `radstream load` refusing bad options with exit 2."""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from radstream.loadtest import (
    CSV_COLUMNS,
    StudyRecord,
    UsageError,
    burst_schedule,
    landing_time,
    parse_duration,
    parse_rate,
    parse_time,
    percentile,
    rate_schedule,
    run_load,
    schedule_from_options,
    summarize,
    write_exports,
)


@pytest.mark.parametrize("text, seconds", [
    ("60s", 60), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), ("90", 90), ("1.5m", 90),
    ("2 min", 120), ("0s", 0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "-5s", "5s and more", "m"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError) as caught:
        parse_duration(text, "window")
    assert caught.value.exit_code == 2 and "--window" in str(caught.value)


@pytest.mark.parametrize("text, per_second", [
    ("10/min", 10 / 60), ("2/s", 2), ("100/h", 100 / 3600), ("5/10s", 0.5), ("10/minute", 10 / 60), ("1.5/m", 0.025),
])
def test_rates(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["10", "ten/min", "10/fortnight", "0/min", "10/0s", "/min"])
def test_bad_rates_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_rate(text)


def test_a_burst_spreads_evenly_over_its_window():
    schedule = burst_schedule(50, 60)
    assert schedule.count == 50 and schedule.offsets[0] == 0 and schedule.span < 60
    assert np.allclose(np.diff(schedule.offsets), 1.2)
    assert set(burst_schedule(5, 0).offsets) == {0.0}


def test_a_rate_schedule_keeps_its_pace_for_its_duration():
    schedule = rate_schedule(parse_rate("10/min"), parse_duration("30m"))
    assert schedule.count == 300 and schedule.mode == "rate"
    assert np.allclose(np.diff(schedule.offsets), 6.0) and schedule.span < 1800
    with pytest.raises(UsageError):
        rate_schedule(parse_rate("1/h"), 60)  # no study would be sent


@pytest.mark.parametrize("burst, window, rate, duration", [
    (None, None, None, None), (10, None, "1/s", "1m"), (10, None, None, "1m"), (None, "10s", "1/s", "1m"),
    (None, None, "1/s", None),
])
def test_options_must_pick_exactly_one_schedule(burst, window, rate, duration):
    with pytest.raises(UsageError):
        schedule_from_options(burst, window, rate, duration)


def test_options_build_either_schedule():
    assert schedule_from_options(50, "60s", None, None).count == 50
    assert schedule_from_options(5, None, None, None).span == 0
    assert schedule_from_options(None, None, "2/s", "10s").count == 20


def test_percentile_matches_linear_interpolation():
    values = [random.Random(7).uniform(0, 1000) for _ in range(101)]
    for q in (0, 50, 95, 99, 100):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), abs=0.06)
    assert percentile([], 50) is None and percentile([42.0], 99) == 42.0


def test_landing_time_prefers_the_written_time_only_when_plausible():
    assert landing_time(100.0, 101.5, 102.0) == 101.5
    assert landing_time(100.0, 99.0, 102.0) == 102.0  # a skewed clock
    assert landing_time(100.0, None, 102.0) == 102.0
    assert parse_time("2024-01-15T10:00:00.250000Z") == pytest.approx(1705312800.25)
    assert parse_time("not a time") is None


class SimulatedPipeline:
    """A simulated clock and a pipeline that lands each study `delay` seconds after its upload
    (or never, for the ids in `lost`); studies whose index is in `bad` land as failures."""

    def __init__(self, delay: float = 2.0, lost: set[str] = frozenset(), bad: set[int] = frozenset(),
                 interrupt_at: float | None = None):
        self.now, self.delay, self.lost, self.bad, self.interrupt_at = 1_000_000.0, delay, lost, bad, interrupt_at
        self.uploads: dict[str, float] = {}
        self.ids: list[str] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.interrupt_at is not None and self.now + seconds >= self.interrupt_at:
            self.now, self.interrupt_at = max(self.now, self.interrupt_at), None
            raise KeyboardInterrupt
        self.now += max(seconds, 0.001)

    def submit(self, index: int) -> None:
        self.uploads[self.ids[index]] = self.now

    def poll(self) -> dict[str, tuple[str, str]]:
        return {sid: (kind, f"{kind}/{sid}") for sid, at in self.uploads.items()
                if sid not in self.lost and self.now >= at + self.delay
                for kind in ["failure" if self.ids.index(sid) in self.bad else "result"]}

    def fetch(self, key: str) -> dict:
        if key.startswith("failure/"):
            return {"stage": "prepare", "error_type": "CorruptImage", "message": "broken"}
        return {"latency_ms": {"validate": 10, "prepare": 20, "inference": 30}, "top_finding": {"label": "Effusion"}}

    def run(self, schedule, drain_s: float = 30.0):
        self.ids = [f"S-{i}" for i in range(schedule.count)]
        return run_load(schedule, self.ids, self.submit, self.poll, self.fetch, drain_s=drain_s,
                        poll_interval_s=0.25, clock=self.clock, sleep=self.sleep)


def test_uploads_follow_the_schedule_and_the_run_stops_by_itself():
    sim = SimulatedPipeline(delay=2.0, bad={3})
    schedule = burst_schedule(10, 10)
    run = sim.run(schedule)
    starts = [sim.uploads[f"S-{i}"] - run.started_at for i in range(10)]
    assert starts == pytest.approx(list(schedule.offsets), abs=0.01)
    assert [r.status for r in run.records].count("SUCCESS") == 9 and run.records[3].status == "FAILED"
    assert all(2000 <= r.latency_ms <= 2260 for r in run.records)  # polled every 0.25 s
    # It stopped as soon as the last study landed, not at the drain bound.
    assert run.finished_at - run.started_at < schedule.span + 2.5
    summary = summarize(run.records, schedule, run.started_at, run.finished_at)
    assert (summary["submitted"], summary["succeeded"], summary["failed"], summary["lost"]) == (10, 9, 1, 0)
    assert summary["stages"]["inference"]["p50_ms"] == 30 and summary["failure_types"] == {"prepare/CorruptImage": 1}
    assert summary["stages"]["overhead"]["p50_ms"] == pytest.approx(summary["p50_ms"] - 60, abs=0.2)


def test_a_study_that_never_lands_is_lost_after_the_drain_bound():
    sim = SimulatedPipeline(delay=1.0, lost={"S-2"})
    run = sim.run(burst_schedule(4, 0), drain_s=20)
    assert [r.status for r in run.records] == ["SUCCESS", "SUCCESS", "LOST", "SUCCESS"]
    assert 20 <= run.finished_at - run.started_at <= 20.5
    assert summarize(run.records, burst_schedule(4, 0), run.started_at, run.finished_at)["lost"] == 1


def test_ctrl_c_stops_submitting_and_waits_for_what_is_in_flight():
    sim = SimulatedPipeline(delay=3.0, interrupt_at=1_000_000.0 + 4.1)
    schedule = rate_schedule(1.0, 20)  # one per second for 20 s
    run = sim.run(schedule, drain_s=60)
    assert run.interrupted
    submitted = [r for r in run.records if r.submitted_at is not None]
    assert len(submitted) == 5  # at 0..4 s
    assert all(r.status == "SUCCESS" for r in submitted)
    assert all(r.status == "unsubmitted" for r in run.records[5:])
    summary = summarize(run.records, schedule, run.started_at, run.finished_at, run.interrupted)
    assert (summary["planned"], summary["submitted"], summary["lost"], summary["interrupted"]) == (20, 5, 0, True)


def test_a_failed_upload_is_reported_not_fatal():
    sim = SimulatedPipeline(delay=1.0)

    def flaky(index: int) -> None:
        if index == 1:
            raise ConnectionError("network down")
        sim.submit(index)

    sim.ids = ["S-0", "S-1", "S-2"]
    run = run_load(burst_schedule(3, 0), sim.ids, flaky, sim.poll, sim.fetch, drain_s=10, clock=sim.clock, sleep=sim.sleep)
    assert [r.status for r in run.records] == ["SUCCESS", "UPLOAD_FAILED", "SUCCESS"]
    assert "network down" in run.records[1].error_message
    summary = summarize(run.records, burst_schedule(3, 0), run.started_at, run.finished_at)
    assert (summary["submitted"], summary["upload_failed"]) == (2, 1)


def test_exports_write_one_csv_row_per_study_and_the_summary(tmp_path):
    sim = SimulatedPipeline(delay=1.0, bad={1})
    schedule = burst_schedule(3, 0)
    run = sim.run(schedule)
    summary = summarize(run.records, schedule, run.started_at, run.finished_at)
    paths = write_exports(tmp_path / "out", "RUN", summary, run.records)
    with open(paths["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS and [r["status"] for r in rows] == ["SUCCESS", "FAILED", "SUCCESS"]
    assert rows[0]["inference_ms"] == "30.0" and rows[1]["error_type"] == "CorruptImage"
    document = json.loads(Path(paths["json"]).read_text())
    assert document["run_id"] == "RUN" and document["succeeded"] == 2 and len(document["studies"]) == 3


def test_a_record_lands_with_the_documents_fields():
    record = StudyRecord(0, "S-0", 0.0, submitted_at=parse_time("2024-01-15T10:00:00Z"), status="pending")
    record.land("result", {"created_at": "2024-01-15T10:00:01.500000Z", "top_finding": {"label": "Edema"},
                           "latency_ms": {"validate": 1.0, "store": 5.0, "total": 6.0}},
                observed_at=parse_time("2024-01-15T10:00:03Z"))
    assert (record.status, record.latency_ms, record.top_finding) == ("SUCCESS", 1500.0, "Edema")
    assert record.stage_ms == {"validate": 1.0, "store": 5.0}


@pytest.mark.parametrize("args", [
    ["--rate", "ten/min", "--duration", "1m"], ["--burst", "5", "--window", "soon"], ["--rate", "1/s"],
    ["--burst", "5", "--rate", "1/s", "--duration", "1m"], ["--burst", "0"],
])
def test_the_command_refuses_bad_options_with_exit_2(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from radstream.cli import app

    monkeypatch.chdir(tmp_path)  # no radstream.yaml: nothing could be uploaded anyway
    result = CliRunner().invoke(app, ["load", *args, "--json"])
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize(("trained", "trained_on", "cell"), [(True, "NIH ChestX-ray14", "True"), (False, None, "False")])
def test_the_csv_says_whether_the_model_that_answered_is_trained(tmp_path, trained, trained_on, cell):
    record = StudyRecord(0, "S-0", 0.0, submitted_at=parse_time("2024-01-15T10:00:00Z"), status="pending")
    record.land("result", {"created_at": "2024-01-15T10:00:01Z", "top_finding": {"label": "Edema"}, "latency_ms": {},
                           "model_trained": trained, "model_trained_on": trained_on, "model_licence": "CC-BY-4.0",
                           "model_sha256": "ab" * 32},
                observed_at=parse_time("2024-01-15T10:00:03Z"))
    schedule = burst_schedule(1, 0)
    paths = write_exports(tmp_path, "RUN", summarize([record], schedule, 0.0, 1.0), [record])
    with open(paths["csv"], newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["model_trained"], row["model_trained_on"], row["model_licence"], row["model_sha256"]) == (
        cell, trained_on or "", "CC-BY-4.0", "ab" * 32)


# -- counting by the newest outcome ---------------------------------------------------------------
def _listed(key: str, second: int) -> dict:
    return {"Key": key, "LastModified": datetime(2025, 1, 1, 0, 0, second, tzinfo=timezone.utc)}


def test_a_study_counts_by_its_newest_outcome_and_a_failure_wins_a_tie():
    from radstream.aws.runs import latest_outcomes

    outcomes = latest_outcomes([
        _listed("results/OK/aaaa.json", 1),
        _listed("results/LATER-FAILED/aaaa.json", 1), _listed("failed/LATER-FAILED/aaaa/reason.json", 2),
        _listed("failed/RERUN/aaaa/reason.json", 1), _listed("results/RERUN/bbbb.json", 3),
        _listed("failed/ONLY-FAILED/aaaa/reason.json", 1), _listed("failed/ONLY-FAILED/aaaa/original", 5),
        _listed("results/TIE/aaaa.json", 4), _listed("failed/TIE/bbbb/reason.json", 4),
    ])
    assert {sid: o.kind for sid, o in outcomes.items()} == {
        "OK": "result", "LATER-FAILED": "failure", "RERUN": "result", "ONLY-FAILED": "failure", "TIE": "failure"}
    assert outcomes["RERUN"].key == "results/RERUN/bbbb.json"


def test_a_result_followed_by_a_failure_is_counted_as_the_failure():
    sim = SimulatedPipeline(delay=1.0)
    polls = []

    def poll() -> dict[str, tuple[str, str]]:
        polls.append(sim.now)
        landed = sim.poll()
        if len(polls) > 1 and "S-0" in landed:  # a later stage failed after the result was written
            landed["S-0"] = ("failure", "failure/S-0")
        return landed

    sim.ids = ["S-0", "S-1"]
    run = run_load(burst_schedule(2, 0), sim.ids, sim.submit, poll, sim.fetch, drain_s=10, poll_interval_s=0.25,
                   clock=sim.clock, sleep=sim.sleep)
    assert [r.status for r in run.records] == ["FAILED", "SUCCESS"]
    summary = summarize(run.records, burst_schedule(2, 0), run.started_at, run.finished_at)
    assert (summary["succeeded"], summary["failed"]) == (1, 1)
