"""`radstream deid IN... --out DIR`: the command; what it does is radstream.deid_files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import (
    EXIT_FAILED,
    EXIT_OK,
    ConfigOpt,
    JsonOpt,
    emit,
    options,
    run_command,
    stderr_console,
)

InputsArg = Annotated[
    list[Path],
    typer.Argument(help="DICOM files, or folders searched recursively.", exists=True, show_default=False),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the de-identified copies (created if needed).")]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Secret key for the pseudonyms (UIDs, date shift), for offline use: a file of at "
                 "least 32 random bytes, e.g. `head -c 32 /dev/urandom > deid.key`. Same key, same pseudonyms. "
                 "Without it, the deployment's own key (Secrets Manager) is used.", show_default=False),
]


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


def deid(ctx: typer.Context, inputs: InputsArg, out: OutOpt, key_file: KeyFileOpt = None, config: ConfigOpt = None,
         json_output: JsonOpt = False) -> None:
    """Write de-identified copies of DICOM files: PS3.15 basic profile, keyed UIDs, shifted dates,
    pixel data unchanged. A copy that still looks identified is not written (exit 1)."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.deid_files import deidentify_files, read_key_file

        if key_file is not None:
            key = read_key_file(key_file)
        else:  # the deployment's key, as `radstream ingest` uses it
            from radstream.deid_files import key_source
            from radstream.session import open_context

            with open_context(opts, "deid", lock=False) as sctx:
                key = key_source(None, sctx)()
        result = deidentify_files(inputs, out, key)
        emit(result, opts.json, _render)
        return EXIT_OK if result["ok"] else EXIT_FAILED

    run_command(opts, body)
