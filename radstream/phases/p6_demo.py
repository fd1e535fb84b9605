"""Phase 6: the demo. Real and generated studies go through the deployed pipeline while a live table
shows each one's Step Functions states; then their results and quarantined failures are read back.

The studies (radstream.studies): the real PA chest radiograph from pydicom-data, de-identified
before upload; synthetic JPEG, 8-bit and 16-bit PNG radiographs with sidecars; and bad inputs the
pipeline must quarantine with a reason. Their names (and object keys) start with DEMO-; the ids the
pipeline gives them (a DICOM's from its Study Instance UID) are recorded at upload, and outcomes
and cleanup go by those. The phase is done when every recorded demo study's newest outcome is a
result or a failure object, so a second `radstream demo` uploads nothing and only prints the
findings again; verify fails when any study ends otherwise than the demo expects of it."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from radstream.errors import RadstreamError
from radstream.phases.base import Change, Phase, Step, VerifyFailed

if TYPE_CHECKING:
    from radstream.aws.runs import Outcome
    from radstream.context import Context
    from radstream.loadtest import StudyRecord
    from radstream.studies import GeneratedStudy

PHASE = 6
START_TIMEOUT_S = 120  # from upload until its execution shows up
FOLLOW_TIMEOUT_S = 600
LANDING_TIMEOUT_S = 60  # after its execution ended, for the outcome object
POLL_S = 1.0
STATE_COLUMNS = (("ValidateInput", "validate"), ("PrepareImage", "prepare"), ("InvokeInference", "inference"),
                 ("StoreResults", "store"), ("SendTelemetry", "telemetry"), ("StoreFailure", "quarantine"))


def _recorded(ctx: Context) -> list[dict[str, Any]]:
    return list(ctx.outputs(PHASE).get("demo_studies") or [])


def _name(record: dict[str, Any]) -> str:
    """The study's name; records written before ids and names differed carry only the id."""
    return record.get("name") or record["study_id"]


def _landed(ctx: Context) -> dict[str, Outcome]:
    """study id → newest outcome, for the recorded demo studies."""
    from radstream.aws.runs import landed

    return landed(ctx.client("s3"), ctx.names.bucket("results"), [f"{s['study_id']}/" for s in _recorded(ctx)])


def _all_landed(ctx: Context) -> bool:
    """The phase's check: every recorded demo study has its result or failure object."""
    recorded = _recorded(ctx)
    if not recorded:
        return False
    outcomes = _landed(ctx)
    return all(study["study_id"] in outcomes for study in recorded)


def _console(ctx: Context) -> Any:
    """The reporter's console (stderr), or None for a silent reporter."""
    return getattr(ctx.reporter, "console", None)


class DemoRun:
    """Shared by the steps of one run: the demo studies (generated once) and which were uploaded now."""

    def __init__(self) -> None:
        self._studies: list[GeneratedStudy] | None = None
        self.uploaded: set[str] = set()

    def get(self) -> list[GeneratedStudy]:
        if self._studies is None:
            from radstream.studies import demo_studies

            self._studies = demo_studies()
        return self._studies


class UploadStep(Step):
    name = "upload-studies"
    description = "upload the demo studies (sidecars first) to the images bucket"

    def __init__(self, run: DemoRun):
        self.run = run

    def check(self, ctx: Context) -> bool:
        return _all_landed(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        bucket = ctx.names.bucket("images")
        return [Change("create", "s3 object", f"s3://{bucket}/{study.image_key}", study.description)
                for study in self.run.get()]

    def apply(self, ctx: Context) -> dict[str, Any]:
        """Upload every study without an outcome yet; keep the record of those that have one."""
        from radstream.aws.runs import upload

        s3, bucket = ctx.client("s3"), ctx.names.bucket("images")
        outcomes, earlier = _landed(ctx), {_name(s): s for s in _recorded(ctx)}
        records = []
        for study in self.run.get():
            record: dict[str, Any] = {"name": study.name, "study_id": study.study_id, "kind": study.kind,
                      "description": study.description, "image_key": study.image_key,
                      "expected_failure": list(study.expected_failure or []) or None, "uploaded_at": None}
            landed_before = earlier.get(study.name)
            if landed_before and landed_before["study_id"] in outcomes:
                # Keep what was uploaded then: the real radiograph's id changes with each de-identification.
                record |= {"study_id": landed_before["study_id"], "uploaded_at": landed_before.get("uploaded_at")}
            else:
                upload(s3, bucket, study.objects[:-1])
                record["uploaded_at"] = time.time()  # latency is measured from the image's upload
                upload(s3, bucket, study.objects[-1:])
                self.run.uploaded.add(study.name)
            records.append(record)
        ctx.log(f"{sum(s['name'] in self.run.uploaded for s in records)} demo studies uploaded to s3://{bucket}/incoming/")
        return {"demo_studies": records}

    def verify(self, ctx: Context) -> None:
        from radstream.aws.wiring import object_exists

        s3, bucket = ctx.client("s3"), ctx.names.bucket("images")
        missing = [s["image_key"] for s in _recorded(ctx) if not object_exists(s3, bucket, s["image_key"])]
        if missing:
            raise VerifyFailed(f"not in s3://{bucket}: {', '.join(missing)}")

    def destroy(self, ctx: Context) -> None:
        """Every demo object, in every bucket it reaches: inputs, tensors, results, failures."""
        from radstream.aws.runs import FAILED_PREFIX, RESULTS_PREFIX, delete_prefixes
        from radstream.names import INCOMING_PREFIX
        from radstream.studies import DEMO_PREFIX

        s3 = ctx.client("s3")
        ids = [DEMO_PREFIX, *(f"{s['study_id']}/" for s in _recorded(ctx))]
        removed = delete_prefixes(s3, ctx.names.bucket("images"), [INCOMING_PREFIX + DEMO_PREFIX])
        removed += delete_prefixes(s3, ctx.names.bucket("artifacts"), ["tensors/" + i for i in ids])
        removed += delete_prefixes(s3, ctx.names.bucket("results"), [p + i for p in (RESULTS_PREFIX, FAILED_PREFIX) for i in ids])
        if removed:
            ctx.log(f"deleted {removed} demo object version(s)")


class FollowStep(Step):
    name = "follow-executions"
    description = "follow each study's Step Functions execution until it ends"

    def __init__(self, run: DemoRun):
        self.run = run

    def check(self, ctx: Context) -> bool:
        return _all_landed(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("run", "pipeline execution", "demo studies", "wait for each execution to end")]

    def apply(self, ctx: Context) -> dict[str, Any]:
        from radstream.aws.runs import ExecutionFinder, execution_progress

        sfn, bucket = ctx.client("stepfunctions"), ctx.names.bucket("images")
        # This run's uploads, and after a crash those an earlier run uploaded that have not landed.
        outcomes = _landed(ctx)
        pending = [s for s in _recorded(ctx) if s.get("uploaded_at")
                   and (_name(s) in self.run.uploaded or s["study_id"] not in outcomes)]
        since = datetime.fromtimestamp(min((s["uploaded_at"] for s in pending), default=time.time()), timezone.utc)
        # Clocks of this machine and the service may differ a little.
        finder = ExecutionFinder(sfn, self._state_machine(ctx), bucket, since - timedelta(seconds=30))
        progress: dict[str, dict[str, Any]] = {}
        view = LiveTable(_console(ctx), pending, ctx)
        deadline = time.monotonic() + FOLLOW_TIMEOUT_S
        with view:
            while True:
                found = finder.find()
                for study in pending:
                    arn = found.get(study["image_key"])
                    if arn and progress.get(_name(study), {}).get("status", "RUNNING") == "RUNNING":
                        progress[_name(study)] = {"arn": arn, **execution_progress(sfn, arn)}
                view.update(progress)
                waiting = [s for s in pending if progress.get(_name(s), {}).get("status", "RUNNING") == "RUNNING"]
                if not waiting:
                    break
                unseen = [_name(s) for s in waiting if _name(s) not in progress
                          and time.time() - s["uploaded_at"] > START_TIMEOUT_S]
                if unseen or time.monotonic() > deadline:
                    raise RadstreamError(
                        f"{len(unseen) or len(waiting)} demo stud(ies) without a finished execution: "
                        + ", ".join(unseen or [_name(s) for s in waiting]),
                        hint="check the EventBridge rule and the state machine (`radstream status --refresh`), "
                             "then run `radstream demo` again")
                time.sleep(POLL_S)
        return {"demo_executions": {sid: {"arn": p["arn"], "status": p["status"]} for sid, p in progress.items()}}

    @staticmethod
    def _state_machine(ctx: Context) -> str:
        from radstream.aws.stepfunctions import state_machine_arn

        return ctx.outputs(0).get("state_machine_arn") or state_machine_arn(
            ctx.names.region, ctx.names.account_id, ctx.names.state_machine, ctx.names.partition)

    def verify(self, ctx: Context) -> None:
        from radstream.aws.stepfunctions import execution_ended

        sfn = ctx.client("stepfunctions")
        running = [sid for sid, e in (ctx.outputs(PHASE).get("demo_executions") or {}).items()
                   if execution_ended(sfn, e["arn"]) is None]
        if running:
            raise VerifyFailed(f"still running: {', '.join(running)}")


class ResultsStep(Step):
    name = "results"
    description = "read every result and quarantined failure back; nothing may be lost"

    def check(self, ctx: Context) -> bool:
        return _all_landed(ctx)

    def plan(self, ctx: Context) -> list[Change]:
        return [Change("run", "s3 objects", "results/ and failed/", "read the demo outcomes")]

    def apply(self, ctx: Context) -> None:
        """An execution has ended; give its outcome object a moment to show up in listings."""
        try:
            ctx.wait("the demo studies' result or failure objects", lambda: _all_landed(ctx),
                     timeout=LANDING_TIMEOUT_S, interval=1.0)
        except RadstreamError:
            pass  # verify names the lost studies

    def verify(self, ctx: Context) -> None:
        summary = demo_summary(ctx)
        lost = [s["name"] for s in summary["studies"] if s["status"] == "LOST"]
        if lost:
            raise VerifyFailed(f"{len(lost)} demo stud(ies) lost (no result, no failure): {', '.join(lost)}")
        unexpected = [f"{s['name']} ({s['outcome']}, expected {s['expected_outcome']})"
                      for s in summary["studies"] if not s["as_expected"]]
        if unexpected:
            raise VerifyFailed(f"{len(unexpected)} demo stud(ies) ended otherwise than expected: {', '.join(unexpected)}")

    def outputs(self, ctx: Context) -> dict[str, Any]:
        summary = demo_summary(ctx)
        console = _console(ctx)
        if console is not None:
            render_summary(console, summary)
        return {"demo": summary}


def demo_summary(ctx: Context) -> dict[str, Any]:
    """Per study: status, top finding, upload → outcome latency and stage timings; p50/p95 over the
    successes; the quarantined failures with their reasons; how many were lost."""
    from radstream.aws.wiring import read_json
    from radstream.loadtest import StudyRecord, distribution
    from radstream.studies import REAL_STUDY_NAME

    s3, results = ctx.client("s3"), ctx.names.bucket("results")
    outcomes = _landed(ctx)
    studies, failures, real = [], [], None
    for index, recorded in enumerate(_recorded(ctx)):
        study_id = recorded["study_id"]
        outcome = outcomes.get(study_id)
        document = read_json(s3, results, outcome.key) if outcome else None
        record = StudyRecord(index, study_id, 0.0, submitted_at=recorded.get("uploaded_at"), status="LOST")
        if outcome:
            record.land(outcome.kind, document, observed_at=time.time())
            if not recorded.get("uploaded_at"):
                record.latency_ms = None  # uploaded by an earlier version of the state: unknown
        expected = recorded.get("expected_failure")
        entry = {"name": _name(recorded), "study_id": study_id, "kind": recorded["kind"],
                 "description": recorded["description"], "status": record.status, "top_finding": record.top_finding,
                 "probability": ((document or {}).get("top_finding") or {}).get("probability"),
                 "model_trained": (document or {}).get("model_trained"),
                 "latency_ms": record.latency_ms, "stage_ms": record.stage_ms,
                 "expected": "failure" if expected else "result",
                 "expected_outcome": expected_outcome(expected), "outcome": outcome_label(record),
                 "as_expected": outcome_label(record) == expected_outcome(expected)}
        studies.append(entry)
        if record.status == "FAILED" and outcome:
            failures.append({"name": _name(recorded), "study_id": study_id, "stage": record.error_stage,
                             "error_type": record.error_type, "message": record.error_message,
                             "reason_key": f"s3://{results}/{outcome.key}"})
        if _name(recorded) == REAL_STUDY_NAME and record.status == "SUCCESS":
            real = {"name": REAL_STUDY_NAME, "study_id": study_id, "model_trained": (document or {}).get("model_trained"),
                    "findings": ((document or {}).get("findings") or [])[:5]}
    ok = [s for s in studies if s["status"] == "SUCCESS"]
    latency = distribution([s["latency_ms"] for s in ok if s["latency_ms"] is not None])
    stages = {stage: distribution([s["stage_ms"][stage] for s in ok if stage in s["stage_ms"]])
              for stage in ("validate", "prepare", "inference")}
    return {
        "studies": studies,
        "succeeded": len(ok),
        "failed": len(failures),
        "lost": sum(s["status"] == "LOST" for s in studies),
        "unexpected": [s["name"] for s in studies if not s["as_expected"]],
        "p50_ms": latency["p50_ms"],
        "p95_ms": latency["p95_ms"],
        "stages": {stage: {"p50_ms": d["p50_ms"], "p95_ms": d["p95_ms"]} for stage, d in stages.items()},
        "failures": failures,
        "real_radiograph": real,
    }


def expected_outcome(expected_failure: list[str] | None) -> str:
    """What a demo study should end in: "result", or "failure <stage>/<error type>"."""
    return f"failure {expected_failure[0]}/{expected_failure[1]}" if expected_failure else "result"


def outcome_label(record: StudyRecord) -> str:
    """What the study's newest outcome is, in expected_outcome's terms ("lost" when none landed)."""
    if record.status == "SUCCESS":
        return "result"
    if record.status == "FAILED":
        return f"failure {record.error_stage}/{record.error_type}"
    return "lost"


def render_summary(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}"

    table = Table(title="demo studies (latency: upload → result object)", title_justify="left")
    for column in ("study", "input", "status", "top finding", "p", "latency ms"):
        table.add_column(column, justify="right" if column in ("p", "latency ms") else "left")
    for s in summary["studies"]:
        colour = {"SUCCESS": "green", "FAILED": "yellow", "LOST": "red"}[s["status"]]
        status = f"[{colour}]{s['status']}[/]" + ("" if s["as_expected"] else " [red](unexpected)[/]")
        probability = f"{s['probability']:.3f}" if s["probability"] is not None else ""
        table.add_row(s["name"], s["kind"], status, s["top_finding"] or "", probability, ms(s["latency_ms"]))
    console.print(table)
    stages = ", ".join(f"{stage} {ms(d['p50_ms'])}/{ms(d['p95_ms'])}" for stage, d in summary["stages"].items())
    console.print(f"upload → result p50 {ms(summary['p50_ms'])} ms, p95 {ms(summary['p95_ms'])} ms; "
                  f"stages p50/p95 ms: {stages}; lost {summary['lost']}", highlight=False)
    for failure in summary["failures"]:
        console.print(f"  [yellow]quarantined[/] {failure['name']}: {failure['stage']} · {failure['error_type']}: "
                      f"{failure['message']}", highlight=False)
    real = summary.get("real_radiograph")
    if real:
        findings = ", ".join(f"{f['label']} {f['probability']:.3f}" for f in real["findings"])
        console.print(f"real radiograph {real['name']}: {findings}", highlight=False)
        if real["model_trained"] is False:
            console.print("  [dim](the demo model is untrained: these scores show the plumbing, not a diagnosis)[/]")


class LiveTable:
    """Each study's state per pipeline stage, refreshed in place on a terminal; without one, a plain
    line whenever a study's execution ends."""

    def __init__(self, console: Any, studies: list[dict[str, Any]], ctx: Context):
        self.console, self.studies, self.ctx = console, studies, ctx
        self.live: Any = None
        self._reported: set[str] = set()

    def __enter__(self) -> LiveTable:
        if self.console is not None and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table({}), console=self.console, refresh_per_second=4, transient=False)
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def update(self, progress: dict[str, dict[str, Any]]) -> None:
        if self.live is not None:
            self.live.update(self._table(progress))
            return
        for study in self.studies:
            p = progress.get(_name(study))
            if p and p["status"] != "RUNNING" and _name(study) not in self._reported:
                self._reported.add(_name(study))
                self.ctx.log(f"{_name(study)}: {p['status'].lower()} in "
                             f"{time.time() - study['uploaded_at']:.1f}s ({self._stages_text(p)})")

    @staticmethod
    def _cell(state: dict[str, Any] | None) -> str:
        if state is None:
            return "[dim]·[/]"
        if state["status"] == "running":
            return "[yellow]…[/]"
        mark = "[green]✓[/]" if state["status"] == "done" else "[red]✗[/]"
        return f"{mark} {state['ms']:.0f}" if state["ms"] is not None else mark

    @staticmethod
    def _stages_text(p: dict[str, Any]) -> str:
        return ", ".join(f"{label} {s['status']}" + (f" {s['ms']:.0f} ms" if s["ms"] is not None else "")
                         for name, label in STATE_COLUMNS if (s := p["states"].get(name)))

    def _table(self, progress: dict[str, dict[str, Any]]) -> Any:
        from rich.table import Table

        table = Table(title="demo: Step Functions states (ms)", title_justify="left")
        for column in ("study", "input", *(label for _, label in STATE_COLUMNS), "execution", "elapsed s"):
            table.add_column(column)
        for study in self.studies:
            p = progress.get(_name(study))
            status = p["status"] if p else "waiting"
            colour = {"SUCCEEDED": "green", "RUNNING": "yellow", "waiting": "dim"}.get(status, "red")
            table.add_row(_name(study), study["kind"],
                          *(self._cell(p["states"].get(name) if p else None) for name, _ in STATE_COLUMNS),
                          f"[{colour}]{status.lower()}[/]", f"{time.time() - study['uploaded_at']:.1f}")
        return table


class DemoPhase(Phase):
    number = PHASE
    name = "demo"
    summary = "real studies through the pipeline, per-stage latency"

    def steps(self, ctx: Context) -> list[Step]:
        run = DemoRun()
        return [UploadStep(run), FollowStep(run), ResultsStep()]
