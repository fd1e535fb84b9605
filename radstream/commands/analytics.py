"""`radstream query`, `radstream report` and `radstream cost`: read what the pipeline recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from radstream.commands.common import ConfigOpt, JsonOpt, VerboseOpt, emit, options, run_command

EngineOpt = Annotated[
    str | None,
    typer.Option("--engine", help="athena or duckdb (default: athena on aws, duckdb over the S3 objects on the sandbox)."),
]


def _console():
    from rich.console import Console

    return Console()


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    _console().print(table)


def _params(pairs: list[str] | None) -> dict[str, str]:
    from radstream.analytics.sql import QueryError

    params = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise QueryError(f"--param {pair!r} is not KEY=VALUE")
        params[key] = value
    return params


def query(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="A named query (see --list).")] = None,
    sql: Annotated[str | None, typer.Option("--sql", help="Athena SQL over the table `telemetry` instead of a named query.")] = None,
    list_queries: Annotated[bool, typer.Option("--list", help="List the named queries and exit.")] = False,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE for a :KEY placeholder; repeatable.")] = None,
    engine: EngineOpt = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Run a telemetry query: Athena on aws, DuckDB over the same S3 objects on the sandbox."""
    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def body() -> int:
        from radstream.analytics.sql import ENGINES, QueryError, named_queries

        if list_queries:
            listed = [{"name": q.name, "description": q.description, "parameters": q.parameters}
                      for q in named_queries().values()]
            emit({"ok": True, "queries": listed}, opts.json,
                 lambda r: _table("named queries", ["name", "parameters", "description"],
                                  [[q["name"], ", ".join(q["parameters"]), q["description"]] for q in r["queries"]]))
            return 0
        if engine is not None and engine not in ENGINES:
            raise QueryError(f"--engine must be one of {', '.join(ENGINES)}")
        from radstream.analytics.runner import run_query
        from radstream.session import open_context

        with open_context(opts, "query", lock=False) as qctx:
            result = run_query(qctx, name=name, sql=sql, params=_params(param), engine=engine)
        from radstream.render import render_query

        emit({"ok": True, "name": name, **result.to_dict()}, opts.json, render_query)
        return 0

    run_command(opts, body)


def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory for report.md, report.html and the charts.")] = Path("radstream-report"),
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Write the evidence pack: architecture, phases, latency, throughput, failures, cost, teardown proof."""
    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def body() -> int:
        from radstream.analytics import report as report_mod
        from radstream.session import open_context

        with open_context(opts, "report", lock=False) as rctx:
            data = report_mod.gather(rctx)
        written = report_mod.write(data, out.resolve())
        emit({"ok": True, **written, "incomplete": data["errors"]}, opts.json, _render_report)
        return 0

    run_command(opts, body)


def _render_report(result: dict[str, Any]) -> None:
    console = _console()
    console.print(f"wrote [bold]{result['html']}[/] and {result['markdown']} ({len(result['images'])} charts)")
    for section, why in result["incomplete"].items():
        console.print(f"[yellow]{section}:[/] {why}", highlight=False)


def cost(
    ctx: typer.Context,
    images_per_hour: Annotated[float | None, typer.Option(
        "--images-per-hour", min=0.001, help="Measured throughput: adds the fixed costs' share to the cost per image.")] = None,
    explorer_days: Annotated[int | None, typer.Option(
        "--cost-explorer-days", min=1, max=365,
        help="On aws, also ask Cost Explorer for the tagged spend of the last N days ($0.01 per request).")] = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """What the deployment costs idle (what the account holds, per hour and month) and per 1000 images."""
    opts = options(ctx, config=config, json=json_output, verbose=verbose)

    def body() -> int:
        from radstream.analytics.cost import deployment_cost
        from radstream.session import open_context

        with open_context(opts, "cost", lock=False) as cctx:
            summary = deployment_cost(cctx, images_per_hour=images_per_hour, explorer_days=explorer_days)
        emit({"ok": True, **summary}, opts.json, _render_cost)
        return 0

    run_command(opts, body)


def _render_cost(result: dict[str, Any]) -> None:
    idle = result["idle"]
    _table(f"idle: ${idle['per_hour']:.4f}/hour, ${idle['per_month']:.2f}/month (prices as of {idle['prices_as_of']})",
           ["item", "resource", "quantity", "unit", "$/hour", "$/month", "read from"],
           [[li["item"], li["resource"], f"{li['quantity']:g}", li["unit"], f"{li['per_hour']:.4f}", f"{li['per_month']:.2f}",
             li["source"] or ""] for li in idle["lines"]])
    per = result.get("per_1000_images")
    if per:
        _table(f"per 1000 images: ${per['per_1000_images']:.4f}", ["item", "quantity", "unit", "$"],
               [[li["item"], f"{li['quantity']:g}", li["unit"], f"{li['cost']:.6f}"] for li in per["lines"]])
    explorer = result.get("cost_explorer")
    if explorer:
        _table(f"Cost Explorer {explorer['start']}..{explorer['end']}: {explorer['total']:.2f} {explorer['currency']}",
               ["service", "cost"], [[k, f"{v:.4f}"] for k, v in explorer["by_service"].items()])
    console = _console()
    for note in [*idle["notes"], *(per or {}).get("notes", []), *result["notes"]]:
        console.print(f"[dim]note: {note}[/]", highlight=False)
