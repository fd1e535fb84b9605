"""`radstream ab NAME`: one of the plan's A/B tests (radstream.bench.ab): the same load under the
deployment as it is (A) and under B, and every figure's ratio B / A. Exit 1 when a study is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, YesOpt, emit, options, run_command, stderr_console
from radstream.commands.load import BurstOpt, DrainOpt, DurationOpt, RateOpt, WindowOpt

DEFAULT_BURST = 20
WARM_UP_STUDIES = 4


def ab(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="batch, lambda-memory or autoscaling.")],
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="batch, B: Triton's max batch size (1: no batching).")] = 1,
    queue_delay_us: Annotated[int, typer.Option("--queue-delay-us", min=0, help="batch, B: the dynamic batcher's queue delay.")] = 0,
    memory_mb: Annotated[int, typer.Option("--memory-mb", min=128, max=10240, help="lambda-memory, B: every function's memory.")] = 2048,
    burst: BurstOpt = None,
    window: WindowOpt = None,
    rate: RateOpt = None,
    duration: DurationOpt = None,
    drain: DrainOpt = "5m",
    out: Annotated[Path | None, typer.Option("--out", help="Write ab-<name>-<run>.json and .csv here.", show_default=False)] = None,
    yes: YesOpt = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Run the same load (default: a burst of 20) under A, the deployment as it is, and under B; print each figure's ratio B / A."""
    opts = options(ctx, config=config, json=json_output, yes=yes)

    def body() -> int:
        from radstream.bench.ab import EXPERIMENTS, format_table, run, write_exports
        from radstream.errors import ConfigError
        from radstream.loadtest import burst_schedule, parse_duration, run_against, schedule_from_options
        from radstream.session import confirm, open_context

        if name not in EXPERIMENTS:
            raise ConfigError(f"no A/B test called {name!r}", hint=f"choose one of: {', '.join(EXPERIMENTS)}")
        schedule = schedule_from_options(burst if burst or rate else DEFAULT_BURST, window, rate, duration)
        drain_s = parse_duration(drain, "drain")
        console = stderr_console()

        def load(actx: Any) -> dict[str, Any]:
            return run_against(actx, schedule, drain_s, None)

        with open_context(opts, "ab", lock=True) as actx:

            def billable(change: str) -> None:
                if actx.target.billable:
                    confirm(f"Run {schedule.description} twice against deployment {actx.config.deployment!r} ({change}), "
                            "changing it for B and back? The studies and the change cost money.", opts)

            result = run(actx, name, {"max_batch_size": max_batch_size, "queue_delay_us": queue_delay_us,
                                      "memory_mb": memory_mb}, load,
                         lambda wctx: run_against(wctx, burst_schedule(WARM_UP_STUDIES, 0), drain_s, None),
                         progress=lambda text: console.print(f"ab {name}: {text}", highlight=False), confirm=billable)
        result["exports"] = write_exports(out, result) if out and result["applicable"] else {}
        lost = sum(row["a"] + row["b"] for row in result["figures"] or [] if row["figure"] == "lost")
        emit({"ok": not lost, **result}, opts.json, lambda r: typer.echo(format_table(r)))
        return 1 if lost else 0

    run_command(opts, body)
