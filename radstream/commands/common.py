"""Options shared by every command and the one way results leave the CLI.

With --json a command prints exactly one JSON object on stdout and nothing else; human output,
progress and logs go to stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable

import typer

if TYPE_CHECKING:
    from radstream.session import Options

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Path to radstream.yaml (default: ./radstream.yaml).", envvar="RADSTREAM_CONFIG"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
VerboseOpt = Annotated[int, typer.Option("--verbose", "-v", count=True, help="More detail (repeat for more).")]

# Exit codes scripts can trust.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def emit(result: dict[str, Any], as_json: bool, render: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Print a command's result: one JSON object on stdout, or a human rendering on stderr/stdout."""
    if as_json:
        sys.stdout.write(json.dumps(result, default=str, sort_keys=False) + "\n")
        sys.stdout.flush()
    elif render is not None:
        render(result)
    else:
        from rich.pretty import pprint

        pprint(result)


def options(ctx: typer.Context | None, **local: Any):
    """The root callback's global options merged with the command's own."""
    from radstream.runlog import command_line
    from radstream.session import Options

    root = ctx.obj if ctx is not None and isinstance(ctx.obj, Options) else Options()
    merged = root.merged(**local)
    if ctx is not None:
        merged.command = command_line(ctx)
    return merged


def fail(exc: BaseException, opts: Options, extra: dict[str, Any] | None = None) -> int:
    """Report an error (one JSON object with --json) and return the exit code."""
    from radstream.errors import RadstreamError
    from radstream.failures import describe, error_fields, user_error
    from radstream.runlog import failed

    failed(exc, "the command")
    shown = user_error(exc)
    code = shown.exit_code if isinstance(shown, RadstreamError) else 1
    if opts.json:
        emit({"ok": False, **error_fields(exc), **(extra or {})}, True)
    else:
        from rich.markup import escape

        # Messages quote paths and config sources in brackets: text, not markup.
        stderr_console().print(f"[red]error:[/] {escape(describe(exc))}", highlight=False)
    return code


def run_command(opts: Any, body: Callable[[], int]) -> None:
    """Run a command body; every error becomes a clear message and an exit code scripts can trust."""
    from radstream import runlog

    runlog.start(opts.command, opts.verbose)
    try:
        code = body()
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        code = fail(RuntimeError("interrupted; run the same command again to resume"), opts)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
        code = fail(exc, opts)
    finally:
        runlog.finish()
    raise typer.Exit(code)
