"""`radstream bench …`: benchmarks that print ratios measured side by side in one run.

- `inference`: onnxruntime in-process versus a real local Triton (HTTP binary, gRPC).
- `preprocess`: PrepareImage's fast path against the plain one, per input.
- `pipeline`: the sandbox's real path against its floor, the handlers called directly.
- `cold-start`: each handler's import with its layer, and its cold and warm invocations from the logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, VerboseOpt, emit, options, run_command, stderr_console

app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)


def _report(opts: Any, measure: Callable[[], dict[str, Any]], format_table: Callable[[dict[str, Any]], str],
            ok: Callable[[dict[str, Any]], bool] = lambda _: True) -> None:
    """Measure, print the figures (JSON or the benchmark's table) and exit 1 when `ok` says no."""
    def body() -> int:
        result = measure()
        good = ok(result)
        emit({"ok": good, **result}, opts.json, lambda r: typer.echo(format_table(r)))
        return 0 if good else 1

    run_command(opts, body)


def _in_context(opts: Any, command: str, measure: Callable[[Any], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """`measure(ctx)` with the project's deployment context open (no lock: benchmarks change nothing lasting)."""
    def measured() -> dict[str, Any]:
        from radstream.session import open_context

        with open_context(opts, command, lock=False) as bctx:
            return measure(bctx)

    return measured


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
    _report(opts, lambda: run(repo or shipped_model_repository(), seconds=seconds,
                              concurrencies=tuple(concurrency or CONCURRENCIES)), format_table)


@app.command()
def preprocess(
    ctx: typer.Context,
    size: Annotated[int, typer.Option("--size", min=64, max=8192, help="Side of the generated inputs, in pixels.")] = 2048,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Runs per path and input (the median is kept).")] = 5,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """ms per image on the fast and the plain path, the speedup, and whether they agree within tolerance."""
    from radstream.bench.preprocess import format_table, run

    opts = options(ctx, config=config, json=json_output, verbose=verbose)
    _report(opts, lambda: run(size=size, repeat=repeat), format_table, lambda r: r["all_within_tolerance"])


@app.command()
def pipeline(
    ctx: typer.Context,
    studies: Annotated[int, typer.Option("--studies", min=1, help="Studies one at a time, each way.")] = 20,
    burst: Annotated[int, typer.Option("--burst", min=1, help="Studies in the first burst, each way.")] = 50,
    hold_seconds: Annotated[float, typer.Option(
        "--hold-seconds", min=0, help="A second burst of as many as the sandbox finished in this long (0: none).")] = 10.0,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """The same studies through the sandbox and through the handlers called directly: per-study p50/p95,
    burst throughput, their ratios, and where the sandbox's time goes. Needs `radstream up` first."""
    from radstream.bench.pipeline import format_table, run

    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def measure(bctx: Any) -> dict[str, Any]:
        console = stderr_console()
        return run(bctx, studies=studies, burst_size=burst, hold_seconds=hold_seconds,
                   progress=lambda text: console.print(f"bench pipeline: {text}", highlight=False))

    _report(opts, _in_context(opts, "bench pipeline", measure), format_table, lambda r: r["lost"] == 0)


@app.command("cold-start")
def cold_start(
    ctx: typer.Context,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Fresh interpreters per handler (the median is kept).")] = 5,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Each handler's import time with the layer and the heavy libraries it loads; Init Duration and first
    against warm invocations from the functions' REPORT lines."""
    from radstream.bench.cold_start import format_table, run

    opts = options(ctx, config=config, json=json_output, verbose=verbose)
    _report(opts, _in_context(opts, "bench cold-start", lambda bctx: run(bctx, repeat=repeat)), format_table)
