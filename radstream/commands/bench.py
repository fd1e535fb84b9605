"""`radstream bench inference`: onnxruntime in-process versus a real local Triton (HTTP binary, gRPC)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, VerboseOpt, emit, options, run_command

app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)


@app.command()
def inference(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option("--seconds", min=0.2, help="Measuring time per row.")] = 3.0,
    concurrency: Annotated[
        list[int] | None, typer.Option("--concurrency", min=1, help="Concurrent requests; repeat for several (default 1, 4, 8).")
    ] = None,
    repo: Annotated[Path | None, typer.Option("--repo", help="Model repository (default: the shipped default model).")] = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Throughput, p50 and p95 for each mode, and each Triton mode's ratio to onnxruntime."""
    from radstream.bench.inference import CONCURRENCIES, format_table, run
    from radstream.resources import shipped_model_repository

    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def body() -> int:
        result = run(repo or shipped_model_repository(), seconds=seconds, concurrencies=tuple(concurrency or CONCURRENCIES))
        emit({"ok": True, **result}, opts.json, lambda r: typer.echo(format_table(r)))
        return 0

    run_command(opts, body)
