"""`radstream render --out DIR`: write every document RadStream would apply, fully rendered
(radstream.preview, radstream.documents), so it can be read, diffed and linted before anything is applied."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, VerboseOpt, emit, options, run_command


def _show(result: dict[str, Any]) -> None:
    print(f"wrote {len(result['files'])} files to {result['out']} ({result['target']}):", file=sys.stderr)
    for name in result["files"]:
        print(f"  {name}", file=sys.stderr)


def render(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory to write into (its iam/, k8s/, … are replaced).")],
    target: Annotated[Literal["aws", "sandbox"] | None, typer.Option(
        "--target", help="Render for this target instead of the config's.")] = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Write the IAM, S3, EventBridge, Step Functions, Lambda, Kubernetes and Triton documents `up` would
    apply, for the current config. The account is read from the target (the sandbox starts if needed)."""
    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def body() -> int:
        from radstream.preview import render_project

        emit(render_project(opts.config, target, out.resolve(), opts.verbose), opts.json, _show)
        return 0

    run_command(opts, body)
