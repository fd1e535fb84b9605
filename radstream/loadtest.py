"""Load tests of the deployed pipeline, as the project plan specifies them: a burst (N studies within
a window) and a sustained rate (R per unit for a duration).

Pure: parsing the schedule strings, when each study is due, the submit-and-poll loop (the cloud
calls come in as functions), latency statistics and the CSV/JSON exports. Only `run_against`, at the
end, wires that loop to a deployment's S3 (it imports the cloud modules when called) and adds the run
to the project's record of load runs (radstream.load_runs); `radstream load` calls it."""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radstream import load_runs
from radstream.errors import RadstreamError

MAX_STUDIES = 100_000
STAGES = ("validate", "prepare", "inference", "store")
_UNITS = {
    "ms": 0.001, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "hours": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


class UsageError(RadstreamError):
    """A load-test option that cannot be understood; nothing was uploaded."""

    exit_code = 2


# -- parsing --------------------------------------------------------------------------------------
def parse_duration(text: str, option: str = "duration") -> float:
    """'60s', '30m', '1h30m', '500ms', '1.5h' or a bare number of seconds → seconds."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _PART.findall(value)
    if not value or not parts or _PART.sub("", value).strip():
        raise UsageError(f"--{option} {text!r} is not a duration",
                         hint="use a number with a unit: 500ms, 60s, 30m, 1h, 1h30m (a bare number means seconds)")
    seconds = 0.0
    for number, unit in parts:
        if unit not in _UNITS:
            raise UsageError(f"--{option} {text!r}: unknown unit {unit!r}", hint="units: ms, s, m (min), h")
        seconds += float(number) * _UNITS[unit]
    return seconds


def parse_rate(text: str) -> float:
    """'10/min', '2/s', '100/h', '5/10s' → studies per second."""
    count, slash, per = text.strip().lower().partition("/")
    if not slash or not re.fullmatch(r"\d+(\.\d+)?", count.strip()):
        raise UsageError(f"--rate {text!r} is not a rate", hint="use COUNT/UNIT: 10/min, 2/s, 100/h or 5/10s")
    per = per.strip()
    seconds = _UNITS.get(per) or parse_duration(per, "rate")
    if float(count) <= 0 or seconds <= 0:
        raise UsageError(f"--rate {text!r} must be more than zero studies per a positive time")
    return float(count) / seconds


# -- schedules ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    mode: str  # burst | rate
    offsets: tuple[float, ...]  # seconds after the start at which each study is uploaded
    description: str

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def span(self) -> float:
        return self.offsets[-1] if self.offsets else 0.0


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_STUDIES:
        raise UsageError(f"the schedule makes {count} studies; it must make 1 to {MAX_STUDIES}")


def burst_schedule(count: int, window_s: float) -> Schedule:
    """`count` uploads spread evenly over the window (window 0: all at once)."""
    if window_s < 0:
        raise UsageError("--window must not be negative")
    _check_count(count)
    step = window_s / count
    return Schedule("burst", tuple(i * step for i in range(count)), f"burst of {count} within {window_s:g}s")


def rate_schedule(per_second: float, duration_s: float) -> Schedule:
    """One upload every 1/rate seconds, starting at once, for as long as `duration_s` lasts."""
    if duration_s <= 0:
        raise UsageError("--duration must be more than zero")
    count = math.floor(per_second * duration_s + 1e-9)
    if count < 1:
        raise UsageError(f"{per_second * 60:g}/min for {duration_s:g}s makes no study",
                         hint="raise --rate or --duration")
    _check_count(count)
    return Schedule("rate", tuple(i / per_second for i in range(count)),
                    f"{per_second * 60:g}/min for {duration_s:g}s ({count} studies)")


def schedule_from_options(burst: int | None, window: str | None, rate: str | None, duration: str | None) -> Schedule:
    """Exactly one of --burst (with an optional --window) and --rate with --duration."""
    if (burst is None) == (rate is None):
        raise UsageError("give either --burst N [--window 60s] or --rate R/UNIT --duration D",
                         hint="e.g. radstream load --burst 50 --window 60s, or --rate 10/min --duration 30m")
    if burst is not None:
        if duration is not None:
            raise UsageError("--duration goes with --rate; a burst takes --window")
        return burst_schedule(burst, parse_duration(window or "0s", "window"))
    if window is not None:
        raise UsageError("--window goes with --burst; a rate takes --duration")
    if duration is None:
        raise UsageError("--rate needs --duration", hint="e.g. --rate 10/min --duration 30m")
    return rate_schedule(parse_rate(rate or ""), parse_duration(duration))


# -- one study's record ---------------------------------------------------------------------------
@dataclass
class StudyRecord:
    index: int
    study_id: str
    planned_s: float
    submitted_at: float | None = None  # epoch seconds, just before the image upload
    status: str = "unsubmitted"  # unsubmitted | pending | SUCCESS | FAILED | LOST | UPLOAD_FAILED
    landed_at: float | None = None
    latency_ms: float | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)
    top_finding: str | None = None
    # The served model's card and model file digest, as the result document states them.
    model_trained: bool | None = None
    model_trained_on: str | None = None
    model_licence: str | None = None
    model_sha256: str | None = None
    error_stage: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    def land(self, kind: str, document: Mapping[str, Any] | None, observed_at: float) -> None:
        """Record the outcome found at `observed_at`: a result or a failure document."""
        document = document or {}
        self.status = "SUCCESS" if kind == "result" else "FAILED"
        stamp = document.get("created_at" if kind == "result" else "failed_at")
        self.landed_at = landing_time(self.submitted_at or observed_at, parse_time(stamp), observed_at)
        self.latency_ms = round((self.landed_at - (self.submitted_at or observed_at)) * 1000, 1)
        latency = document.get("latency_ms") or {}
        self.stage_ms = {stage: float(latency[stage]) for stage in STAGES if isinstance(latency.get(stage), (int, float))}
        self.top_finding = (document.get("top_finding") or {}).get("label")
        self.model_trained = document.get("model_trained")
        self.model_trained_on, self.model_licence = document.get("model_trained_on"), document.get("model_licence")
        self.model_sha256 = document.get("model_sha256")
        self.error_stage, self.error_type = document.get("stage"), document.get("error_type")
        self.error_message = document.get("message")


def parse_time(value: Any) -> float | None:
    """An ISO-8601 time as the pipeline writes it → epoch seconds (None when absent or unreadable)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def landing_time(submitted: float, written: float | None, observed: float) -> float:
    """When the outcome landed: the time the pipeline wrote into it when that is plausible (between
    upload and our seeing it: polling is coarser and S3 listings keep whole seconds), else when we saw it."""
    if written is not None and submitted <= written <= observed:
        return written
    return observed


# -- statistics -----------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 1)


def distribution(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "count": len(values),
        "p50_ms": percentile(values, 50),
        "p95_ms": percentile(values, 95),
        "p99_ms": percentile(values, 99),
        "mean_ms": round(sum(values) / len(values), 1) if values else None,
        "max_ms": round(max(values), 1) if values else None,
    }


def summarize(records: Sequence[StudyRecord], schedule: Schedule, started_at: float, finished_at: float,
              interrupted: bool = False) -> dict[str, Any]:
    """The numbers a load test reports. Latency is upload → outcome object, over successes only;
    the stages are the pipeline's own timings; `overhead` is what the orchestration adds on top."""
    by_status = {s: [r for r in records if r.status == s] for s in ("SUCCESS", "FAILED", "LOST", "UPLOAD_FAILED")}
    ok = by_status["SUCCESS"]
    latencies = [r.latency_ms for r in ok if r.latency_ms is not None]
    stages = {stage: distribution([r.stage_ms[stage] for r in ok if stage in r.stage_ms]) for stage in STAGES}
    overhead = [r.latency_ms - sum(r.stage_ms.values()) for r in ok if r.latency_ms is not None and r.stage_ms]
    stages["overhead"] = distribution(overhead)
    landed = [r.landed_at for r in records if r.landed_at is not None]
    active = (max(landed) - started_at) if landed else 0.0
    submitted = sum(r.status in ("pending", "SUCCESS", "FAILED", "LOST") for r in records)
    errors: dict[str, int] = {}
    for record in by_status["FAILED"]:
        errors[f"{record.error_stage}/{record.error_type}"] = errors.get(f"{record.error_stage}/{record.error_type}", 0) + 1
    overall = distribution(latencies)
    return {
        "mode": schedule.mode,
        "schedule": schedule.description,
        "planned": schedule.count,
        "submitted": submitted,
        "succeeded": len(ok),
        "failed": len(by_status["FAILED"]),
        "lost": len(by_status["LOST"]),
        "upload_failed": len(by_status["UPLOAD_FAILED"]),
        "interrupted": interrupted,
        **{k: v for k, v in overall.items() if k != "count"},
        "stages": stages,
        "failure_types": errors,
        "seconds": round(finished_at - started_at, 1),
        "throughput_per_min": round(len(landed) / active * 60, 1) if active > 0 else None,
    }


# -- the loop -------------------------------------------------------------------------------------
Submit = Callable[[int], object]  # upload study `index`; raises on failure
# study id → (its newest outcome's kind "result" | "failure", that document's key), for all landed so far
Poll = Callable[[], Mapping[str, tuple[str, str]]]
Fetch = Callable[[str], Mapping[str, Any] | None]  # a document's key → the outcome document
Progress = Callable[[Sequence[StudyRecord]], None]


@dataclass
class LoadRun:
    records: list[StudyRecord]
    started_at: float
    finished_at: float
    interrupted: bool


def run_load(
    schedule: Schedule,
    study_ids: Sequence[str],
    submit: Submit,
    poll: Poll,
    fetch: Fetch,
    *,
    drain_s: float,
    poll_interval_s: float = 0.5,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> LoadRun:
    """Upload each study when it is due, poll for outcomes, and stop by itself once every uploaded
    study has landed, or `drain_s` after the last upload. Ctrl-C stops submitting and drains (still
    bounded by `drain_s`); a second Ctrl-C stops waiting. Whatever has not landed by then is LOST.
    A study counts by its newest outcome: one last poll at the end re-reads any study whose outcome
    changed since it landed (a result followed by a failure of a later stage is a failure)."""
    records = [StudyRecord(i, sid, offset) for i, (sid, offset) in enumerate(zip(study_ids, schedule.offsets, strict=False))]
    started = clock()
    next_index, stopping, deadline, last_poll = 0, False, None, -math.inf
    interrupted = False
    landed_keys: dict[int, tuple[str, str]] = {}
    while True:
        try:
            now = clock()
            while not stopping and next_index < len(records) and started + records[next_index].planned_s <= now:
                record = records[next_index]
                record.submitted_at = clock()
                try:
                    submit(next_index)
                    record.status = "pending"
                except Exception as exc:  # noqa: BLE001 - one failed upload must not stop the test
                    record.status, record.error_message = "UPLOAD_FAILED", f"{type(exc).__name__}: {exc}"
                next_index += 1
            if deadline is None and (stopping or next_index == len(records)):
                deadline = clock() + drain_s
            pending = [r for r in records if r.status == "pending"]
            if pending and clock() - last_poll >= poll_interval_s:
                last_poll = clock()
                outcomes = poll()
                for record in pending:
                    if record.study_id in outcomes:
                        kind, key = landed_keys[record.index] = outcomes[record.study_id]
                        record.land(kind, fetch(key), clock())
                pending = [r for r in records if r.status == "pending"]
            if progress:
                progress(records)
            if deadline is not None and (not pending or clock() >= deadline):
                break
            wait = poll_interval_s
            if not stopping and next_index < len(records):
                wait = min(wait, started + records[next_index].planned_s - clock())
            sleep(max(0.0, min(wait, poll_interval_s)))
        except KeyboardInterrupt:
            if stopping:
                break  # the second Ctrl-C: stop waiting
            stopping = interrupted = True
            deadline = clock() + drain_s
    newest = poll() if landed_keys else {}
    for record in records:
        if record.status == "pending":
            record.status = "LOST"
        elif record.index in landed_keys and newest.get(record.study_id, landed_keys[record.index]) != landed_keys[record.index]:
            kind, key = newest[record.study_id]
            record.land(kind, fetch(key), clock())
    return LoadRun(records, started, clock(), interrupted)


# -- exports --------------------------------------------------------------------------------------
CSV_COLUMNS = ("index", "study_id", "planned_s", "submitted_at", "status", "latency_ms",
               *(f"{stage}_ms" for stage in STAGES), "top_finding", "model_trained", "model_trained_on", "model_licence",
               "model_sha256", "error_stage", "error_type", "error_message")


def record_row(record: StudyRecord) -> dict[str, Any]:
    row = asdict(record)
    stage_ms = row.pop("stage_ms")
    row.pop("landed_at")
    row["planned_s"] = round(record.planned_s, 3)
    row["submitted_at"] = _iso(record.submitted_at)
    return {column: row.get(column, stage_ms.get(column.removesuffix("_ms"))) for column in CSV_COLUMNS}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_exports(out_dir: Path, run_id: str, summary: Mapping[str, Any], records: Sequence[StudyRecord]) -> dict[str, str]:
    """load-<run id>.csv (one row per study) and load-<run id>.json (the summary and the rows)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [record_row(r) for r in records]
    csv_path, json_path = out_dir / f"load-{run_id}.csv", out_dir / f"load-{run_id}.json"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    json_path.write_text(json.dumps({"run_id": run_id, **summary, "studies": rows}, indent=2) + "\n")
    return {"csv": str(csv_path), "json": str(json_path)}


def new_run_id(now: float | None = None) -> str:
    """A sortable, unique id for a run, e.g. 20240115T100000-3fa2: part of every study id it uploads."""
    import uuid

    moment = datetime.fromtimestamp(now if now is not None else time.time(), timezone.utc)
    return f"{moment:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:4]}"


# -- the serving pods over the run ----------------------------------------------------------------
class ScaleSamples:
    """Reads the serving Deployment's scale every `interval` seconds on a thread while the run
    lasts (`with`), so the report shows the autoscaler's response. A failed read is skipped."""

    def __init__(self, read: Callable[[], Mapping[str, Any]], interval: float = 5.0) -> None:
        import threading

        self.read, self.interval = read, interval
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-samples", daemon=True)
        self._began = time.monotonic()

    def _run(self) -> None:
        while True:
            try:
                scale = self.read()
                self.samples.append({"at_s": round(time.monotonic() - self._began, 1),
                                     **{k: scale.get(k) for k in ("replicas", "ready", "desired", "cpu_utilization")}})
            except Exception:  # noqa: BLE001 - a missed sample is not a failed load test
                pass
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> ScaleSamples:
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def summary(self) -> dict[str, Any]:
        """`replicas` (the samples) and `replicas_max`; null when no sample could be read."""
        counts = [s["replicas"] for s in self.samples if s.get("replicas") is not None]
        return {"replicas": self.samples, "replicas_max": max(counts) if counts else None}


# -- against a deployment -------------------------------------------------------------------------
Watch = Callable[[str, str], AbstractContextManager[Callable[[Sequence[StudyRecord]], None]]]


def run_against(ctx: Any, schedule: Schedule, drain_s: float, out: Path | None, watch: Watch | None = None) -> dict[str, Any]:
    """Run the schedule against the deployment in `ctx`; the result `--json` prints. `watch(run_id,
    destination)` is entered once the run is ready and yields the callback that sees its progress."""
    from radstream.aws.runs import landed, upload
    from radstream.aws.wiring import read_json
    from radstream.kube.scaling import triton_scale
    from radstream.studies import load_id_prefix, load_study, load_study_id

    if not ctx.outputs(4).get("wired_endpoint"):
        raise RadstreamError("the pipeline is not wired to an inference endpoint yet",
                             hint="run `radstream up` (or `radstream demo`) first")
    s3, images, results = ctx.client("s3"), ctx.names.bucket("images"), ctx.names.bucket("results")
    run_id = new_run_id()
    ids = [load_study_id(run_id, i) for i in range(schedule.count)]

    def poll() -> dict[str, tuple[str, str]]:
        return {sid: (o.kind, o.key) for sid, o in landed(s3, results, [load_id_prefix(run_id)]).items()}

    watching = watch(run_id, f"s3://{images}/incoming/") if watch else nullcontext(lambda records: None)
    with watching as progress, ScaleSamples(lambda: triton_scale(ctx)) as scale:
        run = run_load(schedule, ids, lambda i: upload(s3, images, load_study(run_id, i).objects),
                       poll, lambda key: read_json(s3, results, key),
                       drain_s=drain_s, progress=progress)
    summary = {**summarize(run.records, schedule, run.started_at, run.finished_at, run.interrupted), **scale.summary()}
    load_runs.record(ctx.load_runs_file,
                     load_runs.run_record(run_id, run.started_at, run.finished_at, summary["submitted"], ctx.config.target))
    exports = write_exports(out, run_id, summary, run.records) if out else {}
    problems = [f"{summary[k]} {k.replace('_', ' ')}" for k in ("lost", "upload_failed") if summary[k]]
    return {"ok": not problems, "run_id": run_id, "target": ctx.config.target, **summary, "exports": exports,
            "error": ", ".join(problems) or None}
