"""`radstream watch`: a live view of the running pipeline (executions per minute, p50/p95,
failures by reason, Triton's queue and compute time, replicas and the HPA's target, Lambda
errors), refreshed every --interval; `--once --json` prints one snapshot (radstream.watch)."""

from __future__ import annotations

from typing import Annotated

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command, stderr_console

OnceOpt = Annotated[bool, typer.Option("--once", help="Print one snapshot and exit.")]
IntervalOpt = Annotated[float, typer.Option("--interval", min=1.0, help="Seconds between refreshes.")]
WindowOpt = Annotated[int, typer.Option("--window", min=60, max=86400, help="Seconds of history each figure covers.")]


def watch(
    ctx: typer.Context,
    once: OnceOpt = False,
    interval: IntervalOpt = 5.0,
    window: WindowOpt = 300,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Watch the pipeline live; --once --json prints one snapshot. Exit 1 when a source could not be read."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.session import open_context
        from radstream.watch import gather, render

        with open_context(opts, "watch", lock=False) as wctx:
            if once or opts.json:
                view = gather(wctx, window)
                emit(view, opts.json, lambda v: stderr_console().print(render(v)))
                return 0 if view["ok"] else 1
            from rich.live import Live

            with Live(render(gather(wctx, window)), console=stderr_console(), auto_refresh=False) as live:
                try:
                    while True:
                        import time

                        time.sleep(interval)
                        live.update(render(gather(wctx, window)), refresh=True)
                except KeyboardInterrupt:
                    return 0

    run_command(opts, body)
