"""The project's record of its load tests: one JSON line per `radstream load` run (its id, when it
started and finished, how many studies it uploaded, against which target), so the report can mark
when each ran. Pure file I/O; the file lives in the project's state directory (`Context.load_runs_file`)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TypedDict, cast

FILE_NAME = "load-runs.jsonl"


class LoadRunRecord(TypedDict):
    run_id: str
    started_at: str  # ISO-8601 UTC, e.g. 2025-03-01T10:00:00Z
    finished_at: str
    studies: int
    target: str


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_record(run_id: str, started_at: float, finished_at: float, studies: int, target: str) -> LoadRunRecord:
    """One run's line, from the epoch seconds the load loop measures."""
    return {"run_id": run_id, "started_at": iso_utc(started_at), "finished_at": iso_utc(finished_at),
            "studies": studies, "target": target}


def record(path: Path, run: LoadRunRecord) -> None:
    """Append `run` as one line, in one write, so runs finishing together do not interleave."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(run).encode() + b"\n"
    # A run killed mid-write leaves a line without its newline: end that line, or this run would join it.
    if _torn(path):
        line = b"\n" + line
    with path.open("ab") as handle:
        handle.write(line)


def _torn(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(-1, 2)
            return handle.read(1) != b"\n"
    except OSError:  # missing, or empty: no last byte to seek to
        return False


def read(path: Path) -> list[LoadRunRecord]:
    """Every recorded run, in the order they finished; [] when none was recorded. A line that is not
    a whole JSON object (a write cut short) is skipped: the other runs' lines still count."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [run for run in map(_parse, lines) if run is not None]


def _parse(line: str) -> LoadRunRecord | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return cast(LoadRunRecord, value) if isinstance(value, dict) else None
