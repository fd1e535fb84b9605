"""The project's record of its load runs: one JSON line per run, read back whole even after a write
was cut short."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from radstream import load_runs

STARTED = datetime(2025, 3, 1, 10, 0, 0, tzinfo=timezone.utc).timestamp()


def test_runs_are_read_back_in_the_order_recorded_with_utc_times(tmp_path: Path):
    path = tmp_path / ".radstream" / load_runs.FILE_NAME  # the folder does not exist yet
    first = load_runs.run_record("20250301T100000-aaaa", STARTED, STARTED + 90.4, 50, "sandbox")
    second = load_runs.run_record("20250301T110000-bbbb", STARTED + 3600, STARTED + 3700, 10, "sandbox")
    load_runs.record(path, first)
    load_runs.record(path, second)
    assert load_runs.read(path) == [first, second]
    assert first == {"run_id": "20250301T100000-aaaa", "started_at": "2025-03-01T10:00:00Z",
                     "finished_at": "2025-03-01T10:01:30Z", "studies": 50, "target": "sandbox"}
    assert [json.loads(line)["run_id"] for line in path.read_text().splitlines()] == [first["run_id"], second["run_id"]]


def test_a_torn_last_line_is_skipped_and_the_next_run_does_not_join_it(tmp_path: Path):
    path = tmp_path / load_runs.FILE_NAME
    whole = load_runs.run_record("20250301T100000-aaaa", STARTED, STARTED + 60, 5, "aws")
    load_runs.record(path, whole)
    with path.open("a") as handle:
        handle.write('{"run_id": "20250301T100500-dead", "started_a')  # a run killed mid-write
    assert load_runs.read(path) == [whole]
    after = load_runs.run_record("20250301T101000-cccc", STARTED + 600, STARTED + 660, 5, "aws")
    load_runs.record(path, after)
    assert load_runs.read(path) == [whole, after]


def test_no_file_or_an_empty_one_means_no_run(tmp_path: Path):
    assert load_runs.read(tmp_path / "nowhere" / load_runs.FILE_NAME) == []
    empty = tmp_path / load_runs.FILE_NAME
    empty.touch()
    assert load_runs.read(empty) == []
    run = load_runs.run_record("20250301T100000-aaaa", STARTED, STARTED + 60, 5, "aws")
    load_runs.record(empty, run)
    assert empty.read_text().count("\n") == 1 and load_runs.read(empty) == [run]
