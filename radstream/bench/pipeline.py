"""`radstream bench pipeline`: the same studies through the sandbox's real path and through its floor,
in one run, and the ratios.

- The floor (radstream.bench.direct): the deployed handlers called in this process, with the same
  uploads and the same S3, Kinesis and Triton calls.
- The sandbox: upload → EventBridge → Step Functions → the Lambda workers → the result object.

Per study: one at a time, upload → result object written (the time the result says it was written),
p50/p95 of each way and `per_study_ratio` (sandbox p50 / direct p50). Burst: `burst` studies at
once, then as many as the sandbox finished in `hold_seconds` at the first burst's pace; throughput of
each way and `burst_throughput_ratio` (sandbox / direct, the lower of the two bursts). The floor
runs its burst on as many threads as the sandbox gives each function environments. Hops: where the
sandbox's time goes per study, from its executions' histories, against the floor's handler times.

The studies are the load test's (radstream.studies.load_study); what the benchmark uploads and the
outcomes are deleted afterwards, the telemetry stays."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from radstream.bench import DURATIONS_FILE
from radstream.errors import RadstreamError
from radstream.loadtest import StudyRecord, burst_schedule, distribution, run_load, summarize

PER_STUDY_RATIO_MAX = 2.0
BURST_THROUGHPUT_RATIO_MIN = 0.5
DEFAULT_STUDIES = 20
DEFAULT_BURST = 50
DEFAULT_HOLD_SECONDS = 10.0
WARM_UP = 2  # studies each way before measuring: every worker and client is warm
_POLL_S = 0.05
_STUDY_TIMEOUT_S = 120.0
_BURST_DRAIN_S = 600.0


@dataclass
class Way:
    """One way through the pipeline. `submit(study)` returns once the study is uploaded (the sandbox) or
    done (the floor); `concurrent_submit` hands it to the way's workers and returns at once, and what
    such a submit raised is kept in `errors`."""

    name: str
    submit: Callable[[Any], None]
    concurrent_submit: Callable[[Any], None]
    errors: list[BaseException] = field(default_factory=list)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


# -- measuring ------------------------------------------------------------------------------------
def one_at_a_time(ctx: Any, way: Way, studies: Sequence[Any]) -> list[StudyRecord]:
    """Each study uploaded once the one before it has its outcome."""
    from radstream.aws.runs import landed
    from radstream.aws.wiring import read_json

    s3, results = ctx.client("s3"), ctx.names.bucket("results")
    records = []
    for index, study in enumerate(studies):
        record = StudyRecord(index, study.study_id, 0.0, submitted_at=time.time(), status="pending")
        way.submit(study)
        deadline = time.monotonic() + _STUDY_TIMEOUT_S
        while record.status == "pending":
            outcome = landed(s3, results, [f"{study.study_id}/"]).get(study.study_id)
            if outcome is not None:
                record.land(outcome.kind, read_json(s3, results, outcome.key), time.time())
            elif time.monotonic() > deadline:
                record.status = "LOST"
            else:
                time.sleep(_POLL_S)
        records.append(record)
    return records


def burst(ctx: Any, way: Way, studies: Sequence[Any]) -> dict[str, Any]:
    """All `studies` at once; the load test's summary of them (throughput over the first upload to
    the last outcome)."""
    from radstream.aws.runs import landed
    from radstream.aws.wiring import read_json

    s3, results = ctx.client("s3"), ctx.names.bucket("results")
    prefix = _common_prefix([s.study_id for s in studies])
    schedule = burst_schedule(len(studies), 0)

    def poll() -> dict[str, tuple[str, str]]:
        if way.errors:  # a study that could not even be submitted would only be waited for in vain
            raise way.errors[0]
        return {sid: (o.kind, o.key) for sid, o in landed(s3, results, [prefix]).items()}

    run = run_load(schedule, [s.study_id for s in studies], lambda i: way.concurrent_submit(studies[i]), poll,
                   lambda key: read_json(s3, results, key), drain_s=_BURST_DRAIN_S)
    return summarize(run.records, schedule, run.started_at, run.finished_at, run.interrupted)


def _common_prefix(ids: Sequence[str]) -> str:
    prefix = ids[0]
    for study_id in ids[1:]:
        while not study_id.startswith(prefix):
            prefix = prefix[:-1]
    return prefix


# -- where the sandbox's time goes ----------------------------------------------------------------
def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def execution_hops(events: Sequence[Mapping[str, Any]], submitted_at: float) -> dict[str, float]:
    """ms per hop of one execution: "upload to execution" (the puts, EventBridge, StartExecution),
    each Task state's Lambda call (scheduled to succeeded or failed) and "state transitions" (the
    time between one state's exit and the next one's entry, summed)."""
    hops: dict[str, float] = {}
    previous_exit: float | None = None
    transitions = 0.0
    state, scheduled = None, None
    for event in events:
        at, kind = _epoch(event["timestamp"]), event["type"]
        if kind == "ExecutionStarted":
            hops["upload to execution"] = (at - submitted_at) * 1000
            previous_exit = at
        elif kind == "TaskStateEntered":
            state = event["stateEnteredEventDetails"]["name"]
            if previous_exit is not None:
                transitions += at - previous_exit
        elif kind == "LambdaFunctionScheduled":
            scheduled = at
        elif kind in ("LambdaFunctionSucceeded", "LambdaFunctionFailed") and state and scheduled is not None:
            hops[state] = hops.get(state, 0.0) + (at - scheduled) * 1000
        elif kind == "TaskStateExited":
            previous_exit = at
    hops["state transitions"] = transitions * 1000
    return hops


def _started_input_key(events: Sequence[Mapping[str, Any]]) -> str | None:
    for event in events:
        if event["type"] == "ExecutionStarted":
            detail = json.loads(event["executionStartedEventDetails"]["input"]).get("detail") or {}
            return (detail.get("object") or {}).get("key")
    return None


def sandbox_hops(ctx: Any, studies: Sequence[Any], records: Sequence[StudyRecord], since: datetime) -> list[dict[str, float]]:
    """execution_hops of each study's execution (found by the key its upload event named)."""
    from radstream.aws.activity import execution_history, executions_since
    from radstream.aws.stepfunctions import state_machine_arn

    sfn, names = ctx.client("stepfunctions"), ctx.names
    machine = state_machine_arn(names.region, names.account_id, names.state_machine, names.partition)
    submitted = {study.image_key: record.submitted_at for study, record in zip(studies, records, strict=True)}
    hops = []
    for execution in executions_since(sfn, machine, since):
        events = execution_history(sfn, execution["executionArn"])
        at = submitted.get(_started_input_key(events) or "")
        if at is not None:
            hops.append(execution_hops(events, at))
    return hops


def hop_table(sandbox: Sequence[Mapping[str, float]], direct_state_ms: Sequence[Mapping[str, float]],
              direct_upload_ms: Sequence[float]) -> list[dict[str, Any]]:
    """p50 per hop on the sandbox beside the floor's time for the same work, and the difference."""
    def p50(values: Iterable[float]) -> float | None:
        values = list(values)
        return round(statistics.median(values), 1) if values else None

    hops = [h for h in dict.fromkeys(k for one in sandbox for k in one)]
    rows = []
    for hop in hops:
        on_sandbox = p50(one[hop] for one in sandbox if hop in one)
        if hop == "upload to execution":
            floor = p50(direct_upload_ms)
        elif hop == "state transitions":
            floor = 0.0
        else:
            floor = p50(one[hop] for one in direct_state_ms if hop in one)
        rows.append({"hop": hop, "sandbox_ms": on_sandbox, "direct_ms": floor,
                     "overhead_ms": round(on_sandbox - floor, 1) if on_sandbox is not None and floor is not None else None})
    return rows


# -- the two ways ---------------------------------------------------------------------------------
def _floor(ctx: Any) -> tuple[Any, dict[str, str]]:
    """The deployed chain and the environment its handlers run with in this process."""
    from radstream.aws.lambda_ import function_arn, function_environment
    from radstream.aws.stepfunctions import describe_state_machine, state_machine_arn
    from radstream.bench.direct import DirectChain, load_handler, merged_environment
    from radstream.names import LAMBDA_FUNCTIONS
    from radstream.resources import root

    names = ctx.names
    described = describe_state_machine(ctx.client("stepfunctions"),
                                       state_machine_arn(names.region, names.account_id, names.state_machine, names.partition))
    if described is None:
        raise RadstreamError("the pipeline's state machine is not deployed", hint="run `radstream up` first")
    lam = ctx.client("lambda")
    environments = {fn: function_environment(lam, names.lambda_function(fn)) for fn in LAMBDA_FUNCTIONS}
    handlers = {function_arn(names.region, names.account_id, names.lambda_function(fn), names.partition):
                load_handler(root() / "lambdas" / fn / "handler.py", fn) for fn in LAMBDA_FUNCTIONS}
    credentials = ctx.boto_session.get_credentials().get_frozen_credentials()
    environment = {**merged_environment(environments), "AWS_ENDPOINT_URL": ctx.aws_endpoint,
                   "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
                   "AWS_REGION": names.region, "AWS_DEFAULT_REGION": names.region}
    return DirectChain(json.loads(described["definition"]), handlers), environment


@dataclass
class FloorTimes:
    upload_ms: list[float]
    state_ms: list[dict[str, float]]


def _ways(ctx: Any, chain: Any, pool: ThreadPoolExecutor, floor_times: FloorTimes) -> tuple[Way, Way]:
    from radstream.aws.runs import upload
    from radstream.bench.direct import upload_event

    s3, images = ctx.client("s3"), ctx.names.bucket("images")

    def directly(study: Any) -> None:
        started = time.perf_counter()
        version = upload(s3, images, study.objects)
        floor_times.upload_ms.append((time.perf_counter() - started) * 1000)
        floor_times.state_ms.append(chain.run(upload_event(images, study.image_key, version)).state_ms)

    def uploaded(study: Any) -> None:
        upload(s3, images, study.objects)

    def way(name: str, submit: Callable[[Any], None]) -> Way:
        errors: list[BaseException] = []

        def kept(future: Any) -> None:
            if future.exception() is not None:
                errors.append(future.exception())

        def concurrent_submit(study: Any) -> None:
            pool.submit(submit, study).add_done_callback(kept)

        return Way(name, submit, concurrent_submit, errors)

    return way("direct", directly), way("sandbox", uploaded)


def run(ctx: Any, *, studies: int = DEFAULT_STUDIES, burst_size: int = DEFAULT_BURST,
        hold_seconds: float = DEFAULT_HOLD_SECONDS, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Measure both ways; the figures `bench pipeline --json` prints."""
    from radstream.aws.runs import delete_prefixes
    from radstream.bench.direct import process_environment
    from radstream.loadtest import new_run_id
    from radstream.names import INCOMING_PREFIX
    from radstream.studies import load_id_prefix, load_study

    if not ctx.target.runs_on_this_machine or ctx.target.function_concurrency is None:
        raise RadstreamError("bench pipeline measures the sandbox against its floor; it runs on the sandbox only",
                             hint="on aws, `radstream load` measures the real pipeline")
    if not ctx.outputs(4).get("wired_endpoint"):
        raise RadstreamError("the pipeline is not wired to an inference endpoint yet", hint="run `radstream up` first")
    run_id = new_run_id()
    made: list[str] = []

    def batch(tag: str, count: int) -> list[Any]:
        made.append(f"{run_id}{tag}")
        return [load_study(f"{run_id}{tag}", i) for i in range(count)]

    chain, environment = _floor(ctx)
    floor_times = FloorTimes([], [])
    concurrency = ctx.target.function_concurrency
    result: dict[str, Any] = {"target": ctx.config.target, "run_id": run_id, "studies": studies,
                              "concurrency": concurrency}
    try:
        # What the handlers print (their embedded metrics) would go to CloudWatch Logs on Lambda;
        # here it must not reach this command's output.
        with process_environment(environment), open(os.devnull, "w") as devnull, redirect_stdout(devnull), \
                ThreadPoolExecutor(concurrency) as pool:
            direct, sandbox = _ways(ctx, chain, pool, floor_times)
            for way in (direct, sandbox):
                one_at_a_time(ctx, way, batch(f"W{way.name[0].upper()}", WARM_UP))
            floor_times.upload_ms.clear()
            floor_times.state_ms.clear()
            progress(f"{studies} studies one at a time, each way")
            direct_records = one_at_a_time(ctx, direct, batch("D", studies))
            since = datetime.now(timezone.utc)
            sandbox_studies = batch("S", studies)
            sandbox_records = one_at_a_time(ctx, sandbox, sandbox_studies)
            direct_upload_ms, direct_state_ms = list(floor_times.upload_ms), list(floor_times.state_ms)
            result["per_study"] = {way: _latency(records) for way, records in
                                   (("direct", direct_records), ("sandbox", sandbox_records))}
            result["per_study_ratio"] = _ratio(result["per_study"]["sandbox"]["p50_ms"], result["per_study"]["direct"]["p50_ms"])
            result["hops"] = hop_table(sandbox_hops(ctx, sandbox_studies, sandbox_records, since),
                                       direct_state_ms, direct_upload_ms)
            result["durations_ms"] = _function_durations(chain, direct_state_ms)
            result["bursts"] = []
            sizes = [burst_size]
            for index, size in enumerate(sizes):
                figures = {}
                for way in (direct, sandbox):
                    progress(f"burst of {size} through the {way.name} way")
                    figures[way.name] = burst(ctx, way, batch(f"B{index}{way.name[0].upper()}", size))
                result["bursts"].append(_burst_row(size, figures))
                if index == 0 and hold_seconds > 0:
                    per_second = result["bursts"][0]["sandbox_per_s"] or 0
                    sizes.append(max(1, math.ceil(per_second * hold_seconds)))
    finally:
        progress("deleting the benchmark's studies and outcomes")
        delete_prefixes(ctx.client("s3"), ctx.names.bucket("images"), [f"{INCOMING_PREFIX}{load_id_prefix(m)}" for m in made])
        delete_prefixes(ctx.client("s3"), ctx.names.bucket("results"),
                        [f"{top}{load_id_prefix(m)}" for m in made for top in ("results/", "failed/")])
    ratios = [b["ratio"] for b in result["bursts"] if b["ratio"] is not None]
    result["burst_throughput_ratio"] = min(ratios) if ratios else None
    result["targets"] = {"per_study_ratio_max": PER_STUDY_RATIO_MAX, "burst_throughput_ratio_min": BURST_THROUGHPUT_RATIO_MIN}
    result["targets_met"] = bool(result["per_study_ratio"] is not None and result["per_study_ratio"] <= PER_STUDY_RATIO_MAX
                                 and result["burst_throughput_ratio"] is not None
                                 and result["burst_throughput_ratio"] >= BURST_THROUGHPUT_RATIO_MIN)
    lost = sum(r["lost"] for b in result["bursts"] for r in b["ways"].values())
    lost += sum(v["lost"] for v in result["per_study"].values())
    result["lost"] = lost
    (ctx.state_dir / DURATIONS_FILE).write_text(json.dumps(
        {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run_id": run_id,
         "durations_ms": result["durations_ms"]}, indent=2) + "\n")
    return result


def _latency(records: Sequence[StudyRecord]) -> dict[str, Any]:
    ok = [r.latency_ms for r in records if r.status == "SUCCESS" and r.latency_ms is not None]
    figures = distribution(ok)
    return {"p50_ms": figures["p50_ms"], "p95_ms": figures["p95_ms"], "succeeded": len(ok),
            "failed": sum(r.status == "FAILED" for r in records), "lost": sum(r.status == "LOST" for r in records)}


def _burst_row(size: int, figures: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    per_s = {way: (f["throughput_per_min"] / 60 if f.get("throughput_per_min") else None) for way, f in figures.items()}
    return {"size": size,
            "direct_per_s": round(per_s["direct"], 2) if per_s["direct"] else None,
            "sandbox_per_s": round(per_s["sandbox"], 2) if per_s["sandbox"] else None,
            "ratio": _ratio(per_s["sandbox"], per_s["direct"]),
            "ways": {way: {"succeeded": f["succeeded"], "failed": f["failed"], "lost": f["lost"],
                           "p50_ms": f.get("p50_ms"), "p95_ms": f.get("p95_ms")} for way, f in figures.items()}}


def _function_durations(chain: Any, state_ms: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean ms of each Task state's handler in the floor's one-at-a-time run: what Lambda would bill."""
    states = chain.definition["States"]
    totals: dict[str, list[float]] = {}
    for one in state_ms:
        for state, ms in one.items():
            if states[state]["Type"] == "Task":
                totals.setdefault(state, []).append(ms)
    return {state: round(statistics.fmean(values), 2) for state, values in totals.items()}


def format_table(result: Mapping[str, Any]) -> str:
    from radstream.bench.text import table

    d, s = result["per_study"]["direct"], result["per_study"]["sandbox"]
    lines = [f"{result['studies']} studies one at a time (upload -> result written):",
             f"  direct  p50 {d['p50_ms']} ms  p95 {d['p95_ms']} ms",
             f"  sandbox p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms",
             f"  per-study ratio (sandbox/direct p50): {result['per_study_ratio']}  (target <= {PER_STUDY_RATIO_MAX})",
             "", "where a study's time goes on the sandbox (p50 ms):",
             *table([("hop", 47), ("sandbox", 9), ("direct", 9), ("overhead", 10)],
                    ([r["hop"], r["sandbox_ms"], r["direct_ms"], r["overhead_ms"]] for r in result["hops"]), indent="  "),
             ""]
    for row in result["bursts"]:
        lines.append(f"burst of {row['size']}: direct {row['direct_per_s']}/s, sandbox {row['sandbox_per_s']}/s, "
                     f"ratio {row['ratio']}")
    lines.append(f"burst throughput ratio (sandbox/direct, lowest): {result['burst_throughput_ratio']}  "
                 f"(target >= {BURST_THROUGHPUT_RATIO_MIN}); floor on {result['concurrency']} threads")
    return "\n".join(lines)

