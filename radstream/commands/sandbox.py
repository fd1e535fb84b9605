"""`radstream sandbox start|stop|status|logs`: the local target's background daemon."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command

app = typer.Typer(help="The local sandbox: emulated AWS, a Kubernetes API emulator and a real Triton.", no_args_is_help=True)

PUBLIC_KEYS = ("running", "pid", "aws_endpoint", "kubernetes_endpoint", "kubernetes_ca", "triton_http", "triton_grpc", "registry",
               "base_image", "prometheus", "started_at", "logs")


def _public(info: dict[str, Any]) -> dict[str, Any]:
    # The Kubernetes token stays in sandbox.json (mode 600); it is never printed.
    return {key: info.get(key) for key in PUBLIC_KEYS}


def _render(info: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(stderr=True)
    if not info["running"]:
        console.print("sandbox: [dim]not running[/]")
        return
    console.print(f"sandbox: [green]running[/] (PID {info['pid']}, since {info['started_at']})")
    for key in ("aws_endpoint", "kubernetes_endpoint", "triton_http", "triton_grpc", "registry", "prometheus"):
        if info.get(key):
            console.print(f"  {key:<20} {info[key]}")


def _state_dir(config):
    from radstream import config as config_mod

    loaded = config_mod.load(config)
    return loaded, loaded.state_dir


@app.command()
def start(
    ctx: typer.Context,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every service.")] = 120.0,
) -> None:
    """Start the daemon in the background (no-op when it runs)."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.sandbox import daemon

        loaded, state_dir = _state_dir(opts.config)
        info = daemon.start(state_dir, timeout=timeout, region=loaded.settings.region,
                            aws_endpoint_url=loaded.settings.aws.endpoint_url)
        emit(_public(info), opts.json, _render)
        return 0

    run_command(opts, body)


@app.command()
def stop(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """Stop the daemon and everything it started; the emulated account is discarded."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.sandbox import daemon

        _, state_dir = _state_dir(opts.config)
        emit(_public(daemon.stop(state_dir)), opts.json, _render)
        return 0

    run_command(opts, body)


@app.command()
def status(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """Is it running, and where are its endpoints."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.sandbox import daemon

        _, state_dir = _state_dir(opts.config)
        emit(_public(daemon.status(state_dir)), opts.json, _render)
        return 0

    run_command(opts, body)


@app.command()
def logs(
    ctx: typer.Context,
    service: Annotated[str | None, typer.Argument(help="Which log (default: all).")] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines from the end of each log.")] = 40,
    config: ConfigOpt = None,
) -> None:
    """Show the end of the daemon's logs."""
    opts = options(ctx, config=config)

    def body() -> int:
        from radstream.sandbox import daemon

        _, state_dir = _state_dir(opts.config)
        paths = sorted((state_dir / "logs").glob("*.log"))
        chosen = [p for p in paths if service is None or p.stem.startswith(service)]
        if not chosen:
            print(f"no logs{' for ' + service if service else ''} under {state_dir / 'logs'}", file=sys.stderr)
            return 1
        for path in chosen:
            print(f"==> {path} <==")
            print(daemon.tail_log(path, lines))
        return 0

    run_command(opts, body)
