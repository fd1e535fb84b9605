"""`radstream ingest PATH... [--key-file F] [--already-deidentified]`: the command; what it does is
radstream.ingest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, emit, options, run_command, stderr_console

PathsArg = Annotated[
    list[Path], typer.Argument(help="DICOM, JPEG or PNG files (JPEG/PNG with a .json sidecar), or folders.",
                               exists=True, show_default=False)
]
AlreadyOpt = Annotated[
    bool, typer.Option("--already-deidentified",
                       help="Upload DICOM files without de-identifying them again (done elsewhere); "
                            "they are still checked, and refused if they look identified.")
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="A de-identification key file (at least 32 random bytes) to use instead of "
                 "the deployment's own key, which phase 0 keeps in Secrets Manager.", show_default=False),
]


def _render(result: dict[str, Any]) -> None:
    console = stderr_console()
    for entry in result["studies"]:
        if entry["status"] == "uploaded":
            console.print(f"[green]✓[/] {entry['path']} → s3://{result['bucket']}/{entry['keys'][-1]}", highlight=False)
            for warning in entry["warnings"]:
                console.print(f"  [yellow]warning:[/] {warning}", highlight=False)
        else:
            console.print(f"[red]✗[/] {entry['path']}: {entry['error']}", highlight=False)
    counts = result["counts"]
    console.print(f"{counts['uploaded']} uploaded, {counts['refused']} refused, {counts['failed']} failed", highlight=False)


def ingest(
    ctx: typer.Context,
    paths: PathsArg,
    already_deidentified: AlreadyOpt = False,
    key_file: KeyFileOpt = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Upload studies to the images bucket: DICOM de-identified, JPEG/PNG with their sidecar first."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.deid_files import key_source
        from radstream.ingest import ingest_files
        from radstream.session import open_context

        with open_context(opts, "ingest", lock=False) as sctx:
            result = ingest_files(sctx.client("s3"), sctx.names.bucket("images"), paths, key_source(key_file, sctx),
                                  already_deidentified)
        emit(result, opts.json, _render)
        return 0 if result["ok"] else 1

    run_command(opts, body)
