"""`radstream model build|serve|import`: the Triton model repository and a local Triton serving it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Callable

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, VerboseOpt, emit, fail, options, run_command, stderr_console

app = typer.Typer(help="Build, import and serve the Triton model repository.", no_args_is_help=True)

RepoOpt = Annotated[Path | None, typer.Option(
    "--repo", help="Model repository (default: the project's, .radstream/model_repo, else the shipped default).")]


def _repo(repo: Path | None, opts: Any, writing: bool) -> Path:
    """--repo, else the project's repository: made from the shipped one when a command writes."""
    from radstream import config as config_mod
    from radstream.resources import model_repository, own_model_repository

    if repo is not None:
        return repo
    state_dir = config_mod.load(opts.config).state_dir
    return own_model_repository(state_dir) if writing else model_repository(state_dir)


def _run(opts: Any, body: Callable[[], dict[str, Any]], render: Callable[[dict[str, Any]], None]) -> None:
    """Emit the body's result, or turn its error into a message and the right exit code."""

    def emit_result() -> int:
        emit({"ok": True, **body()}, opts.json, render)
        return 0

    run_command(opts, emit_result)


def _render_model(result: dict[str, Any]) -> None:
    console = stderr_console()
    trained = f"trained on {result['model_trained_on']}" if result["model_trained"] else "UNTRAINED"
    verb = "wrote" if result["created"] else "already present:"
    console.print(f"{verb} {result['model']} version {result['version']} — {trained}")
    console.print(f"  {result['description']}; licence: {result['model_licence'] or 'not declared'}")
    console.print(f"  {result['path']} ({result['bytes'] / 1e6:.1f} MB, sha256 {result['sha256'][:16]}…)")
    console.print(f"  {len(result['labels'])} labels: {', '.join(result['labels'])}")


@app.command()
def build(ctx: typer.Context, repo: RepoOpt = None, config: ConfigOpt = None, json_output: JsonOpt = False, verbose: VerboseOpt = 0) -> None:
    """Generate the default model (deterministic, untrained) with its config, labels and model card."""
    from radstream.inference.repository import build_repository

    opts = options(ctx, config=config, json=json_output, verbose=verbose)
    _run(opts, lambda: build_repository(_repo(repo, opts, writing=True)), _render_model)


@app.command("import")
def import_(
    ctx: typer.Context,
    onnx_file: Annotated[Path, typer.Argument(help="The ONNX model to add.", metavar="FILE.onnx")],
    labels: Annotated[Path, typer.Option("--labels", help="Text file: one finding per line, in output order.")],
    trained: Annotated[bool | None, typer.Option(
        "--trained/--untrained", show_default=False,
        help="Whether the weights were learned from labelled radiographs (--trained needs --trained-on). "
             "Every result and telemetry event says so. Not given: recorded as untrained, with a note.")] = None,
    trained_on: Annotated[str | None, typer.Option(
        "--trained-on", metavar="TEXT", help="The data set(s) it was trained on, e.g. 'NIH ChestX-ray14'; implies --trained.")] = None,
    licence: Annotated[str | None, typer.Option(
        "--licence", metavar="TEXT", help="The licence of the model's weights, e.g. 'CC-BY-4.0' (not declared if omitted).")] = None,
    repo: RepoOpt = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Check a real model against the pipeline contract and add it as the newest version with its model card."""
    from radstream.inference.repository import import_model

    opts = options(ctx, config=config, json=json_output, verbose=verbose)
    if trained is None and not trained_on:
        # Results never claim a training nobody declared.
        stderr_console().print("note: recorded as UNTRAINED (not declared); import again with "
                               "--trained --trained-on DATASET if it is trained", highlight=False)
    declared = bool(trained_on) if trained is None else trained
    _run(opts, lambda: import_model(onnx_file, labels, _repo(repo, opts, writing=True), trained=declared,
                                    trained_on=trained_on, licence=licence), _render_model)


@app.command()
def serve(ctx: typer.Context, repo: RepoOpt = None, config: ConfigOpt = None, json_output: JsonOpt = False, verbose: VerboseOpt = 0) -> None:
    """Run a local Triton on the repository in the foreground until Ctrl-C; prints its endpoints."""
    import signal
    import threading

    from radstream import config as config_mod
    from radstream.inference.model import MODEL_NAME
    from radstream.inference.triton_local import LocalTriton

    opts = options(ctx, config=config, json=json_output, verbose=verbose)
    try:
        work_dir = config_mod.load(opts.config).state_dir / "triton-serve"
        server = LocalTriton(_repo(repo, opts, writing=False), work_dir)
        endpoints = server.start()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
        raise typer.Exit(fail(exc, opts)) from None

    def render(result: dict[str, Any]) -> None:
        console = stderr_console()
        console.print(f"Triton is serving {MODEL_NAME} (Ctrl-C to stop)")
        for key in ("triton_http", "triton_grpc", "log"):
            console.print(f"  {key:<12} {result[key]}")

    stopped = threading.Event()
    # Ctrl-C and SIGTERM (from a supervisor) both stop cleanly, even when SIGINT was inherited as ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    try:
        emit({"ok": True, "model": MODEL_NAME, **endpoints, "log": str(server.log_path)}, opts.json, render)
        while not stopped.wait(0.5):
            if server.process is None or server.process.poll() is not None:
                raise typer.Exit(fail(RuntimeError(f"tritonserver exited; see {server.log_path}"), opts))
    finally:
        server.stop()
