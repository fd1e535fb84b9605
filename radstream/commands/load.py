"""`radstream load --burst 50 --window 60s` and `radstream load --rate 10/min --duration 30m`: the
project plan's burst and sustained load tests against the deployed pipeline.

Generated studies (sidecar first) are uploaded on schedule; latency is measured from each image's
upload to its results/ (or failed/) object, and broken down per stage from the pipeline's own
timings in the result documents. The run stops by itself once every study has landed, or --drain
after the last upload; Ctrl-C stops submitting and drains the same way (a second Ctrl-C stops
waiting). Exit 1 when any study is lost. The run itself is radstream.loadtest.run_against; this
module parses, shows progress and renders."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command, stderr_console

BurstOpt = Annotated[int | None, typer.Option("--burst", min=1, help="Upload N studies within --window.", show_default=False)]
WindowOpt = Annotated[str | None, typer.Option("--window", help="Spread the burst evenly over this long, e.g. 60s (default: all at once).", show_default=False)]
RateOpt = Annotated[str | None, typer.Option("--rate", help="Sustained rate, e.g. 10/min, 2/s, 100/h.", show_default=False)]
DurationOpt = Annotated[str | None, typer.Option("--duration", help="How long to sustain --rate, e.g. 30m.", show_default=False)]
DrainOpt = Annotated[str, typer.Option("--drain", help="After the last upload, wait at most this long for outcomes.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Write load-<run>.csv and load-<run>.json here.", show_default=False)]

_PLAIN_EVERY_S = 10.0


class _Progress:
    """A bar on a terminal (studies landed of planned, with the running p50); plain lines otherwise."""

    def __init__(self, console: Any, total: int):
        self.console, self.total = console, total
        self.bar: Progress | None = None
        self.task: TaskID | None = None
        self._last_line = 0.0

    def __enter__(self) -> _Progress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("load", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, records: Sequence[Any]) -> None:
        from radstream.loadtest import percentile

        counts = {s: sum(r.status == s for r in records) for s in ("pending", "SUCCESS", "FAILED", "UPLOAD_FAILED")}
        landed = counts["SUCCESS"] + counts["FAILED"]
        p50 = percentile([r.latency_ms for r in records if r.status == "SUCCESS" and r.latency_ms is not None], 50)
        text = (f"uploaded {landed + counts['pending']}/{self.total} · in flight {counts['pending']} · "
                f"ok {counts['SUCCESS']} · failed {counts['FAILED']}" + (f" · p50 {p50:.0f} ms" if p50 else ""))
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=landed, description=text)
        elif time.monotonic() - self._last_line >= _PLAIN_EVERY_S:
            self._last_line = time.monotonic()
            self.console.print(f"load: {text}", highlight=False)


def _render(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = stderr_console()

    def ms(value: float | None) -> str:
        return "—" if value is None else f"{value:,.0f}"

    head = Table(title=f"load test {result['run_id']}: {result['schedule']}", title_justify="left")
    for column in ("submitted", "succeeded", "failed", "lost", "p50 ms", "p95 ms", "p99 ms", "per min", "seconds"):
        head.add_column(column, justify="right")
    head.add_row(str(result["submitted"]), str(result["succeeded"]), str(result["failed"]),
                 f"[red]{result['lost']}[/]" if result["lost"] else "0", ms(result["p50_ms"]), ms(result["p95_ms"]),
                 ms(result["p99_ms"]), str(result["throughput_per_min"] or "—"), str(result["seconds"]))
    console.print(head)
    stages = Table("stage (pipeline timings)", "p50 ms", "p95 ms", "p99 ms", "mean ms", title_justify="left")
    for stage, numbers in result["stages"].items():
        stages.add_row(stage, ms(numbers["p50_ms"]), ms(numbers["p95_ms"]), ms(numbers["p99_ms"]), ms(numbers["mean_ms"]))
    console.print(stages)
    for kind, count in result["failure_types"].items():
        console.print(f"  quarantined: {count} × {kind}", highlight=False)
    if result.get("replicas"):
        path = " → ".join(str(n) for n in _changes([s["replicas"] for s in result["replicas"]]))
        console.print(f"  Triton replicas over the run: {path} (max {result['replicas_max']})", highlight=False)
    if result["interrupted"]:
        console.print("[yellow]interrupted:[/] submitting stopped early; in-flight studies were waited for")
    for kind, path in result["exports"].items():
        console.print(f"  {kind}: {path}", highlight=False)
    if result["error"]:
        console.print(f"[red]{result['error']}[/]: not every study came back within --drain", highlight=False)


def _changes(values: Sequence[Any]) -> list[Any]:
    """The values where they change: [1, 1, 2, 2, 1] -> [1, 2, 1]."""
    return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]


def load(
    ctx: typer.Context,
    burst: BurstOpt = None,
    window: WindowOpt = None,
    rate: RateOpt = None,
    duration: DurationOpt = None,
    drain: DrainOpt = "5m",
    out: OutOpt = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Load-test the pipeline: a burst (--burst 50 --window 60s) or a sustained rate (--rate 10/min --duration 30m)."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.loadtest import parse_duration, run_against, schedule_from_options
        from radstream.session import open_context

        # Options first: a typo exits 2 before anything is read or uploaded.
        schedule = schedule_from_options(burst, window, rate, duration)
        drain_s = parse_duration(drain, "drain")
        console = stderr_console()

        @contextmanager
        def watch(run_id: str, destination: str) -> Iterator[Any]:
            console.print(f"load test {run_id}: {schedule.description} → {destination}", highlight=False)
            with _Progress(console, schedule.count) as progress:
                yield progress.update

        with open_context(opts, "load", lock=False) as lctx:
            result = run_against(lctx, schedule, drain_s, out, watch)
        emit(result, opts.json, _render)
        return 0 if result["ok"] else 1

    run_command(opts, body)
