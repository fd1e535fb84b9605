"""`radstream deid IN... --out DIR`: the command; what it does is radstream.deid_files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import EXIT_FAILED, EXIT_OK, JsonOpt, emit, options, run_command, stderr_console

InputsArg = Annotated[
    list[Path],
    typer.Argument(help="DICOM files, or folders searched recursively.", exists=True, show_default=False),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the de-identified copies (created if needed).")]


def _render(result: dict[str, Any]) -> None:
    console = stderr_console()
    for entry in result["files"]:
        if entry["status"] == "deidentified":
            console.print(f"[green]✓[/] {entry['input']} → {entry['output']}", highlight=False)
            for warning in entry["warnings"]:
                console.print(f"  [yellow]warning:[/] {warning}", highlight=False)
        elif entry["status"] == "failed":
            console.print(f"[red]✗[/] {entry['input']}: {entry['error']}", highlight=False)
    counts = result["counts"]
    console.print(
        f"{counts['deidentified']} de-identified, {counts['skipped']} skipped (not DICOM), {counts['failed']} failed",
        highlight=False,
    )


def deid(ctx: typer.Context, inputs: InputsArg, out: OutOpt, json_output: JsonOpt = False) -> None:
    """Write de-identified copies of DICOM files: PS3.15 basic profile, Patient Identity Removed = YES,
    pixel data unchanged."""
    opts = options(ctx, json=json_output)

    def body() -> int:
        from radstream.deid_files import deidentify_files

        result = deidentify_files(inputs, out)
        emit(result, opts.json, _render)
        return EXIT_OK if result["ok"] else EXIT_FAILED

    run_command(opts, body)
