"""Human renderings of command results: tables for status, plan and runs (stderr-free of JSON).
`--json` prints the results themselves: nested as they are, numbers at full precision."""

from __future__ import annotations

import math
from typing import Any

STATUS_STYLE = {
    "done": "green", "skipped": "cyan", "failed": "red", "destroyed": "magenta", "planned": "yellow",
    "in_progress": "yellow", "pending": "dim", "not built": "dim",
}


def _console():
    from rich.console import Console

    return Console()


def _styled(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def render_run(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    table = Table(title=f"{result['deployment']} on {result['target']}", title_justify="left")
    for column in ("phase", "name", "status", "changes", "seconds"):
        table.add_column(column, justify="right" if column in ("phase", "changes", "seconds") else "left")
    for phase in result["phases"]:
        table.add_row(str(phase["number"]), phase["name"], _styled(phase["status"]), str(phase["mutations"]), f"{phase['seconds']:.1f}")
    console.print(table)
    for phase in result["phases"]:
        for change in phase.get("changes", []):
            console.print(f"  [yellow]{change['action']:>7}[/] {change['resource']} [bold]{change['name']}[/] {change.get('detail', '')}")
        if phase.get("error"):
            console.print(f"[red]phase {phase['number']} ({phase['name']}):[/] {phase['error']}", highlight=False)
    if result.get("leftovers"):
        console.print(f"[red]still tagged with this deployment ({len(result['leftovers'])}):[/]")
        for item in result["leftovers"]:
            console.print(f"  {item}")
    if result.get("message"):
        console.print(result["message"])
    console.print(f"{result['mutations']} change(s) made" if not result.get("dry_run") else "dry run: nothing was changed")


def render_phase_list(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("n", "name", "status", "what it does")
    for phase in result["phases"]:
        table.add_row(str(phase["number"]), phase["name"], _styled(phase["status"]), phase["summary"])
    _console().print(table)


def human_number(value: Any) -> Any:
    """A float as people read it: 3 decimals (1234.568), 3 significant digits below 1 (0.000123),
    no trailing zeros (2.5, 2). Anything else unchanged."""
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    decimals = 3 if value == 0 or abs(value) >= 1 else 2 - math.floor(math.log10(abs(value)))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def output_rows(outputs: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested outputs flattened to (dotted name, value): `buckets.images  rs-…-images`; lists of plain
    values joined with commas, others numbered (`nodes[0].name`); empty values left out."""
    if isinstance(outputs, dict):
        return [row for key, value in outputs.items() for row in output_rows(value, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(outputs, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in outputs):
            return [(prefix, ", ".join(str(human_number(v)) for v in outputs))] if outputs else []
        return [row for i, value in enumerate(outputs) for row in output_rows(value, f"{prefix}[{i}]")]
    return [] if outputs is None or outputs == "" else [(prefix, str(human_number(outputs)))]


def render_status(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    render_phase_list(result)
    outputs = Table("output", "value", title="outputs", title_justify="left")
    for name, value in output_rows(result["outputs"]):
        outputs.add_row(name, value)
    console.print(outputs)
    drift = [d for d in result.get("drift", []) if d["drift"]]
    if "drift" in result:
        if drift:
            console.print(f"[red]drift in {len(drift)} step(s):[/]")
            for d in drift:
                console.print(f"  phase {d['phase']} {d['step']}: recorded {d['recorded']}, actually {d['actual']}")
        else:
            console.print("[green]no drift: the world matches the state file[/]")


def render_query(result: dict[str, Any]) -> None:
    """The rows of a query, floats rounded (human_number); --json keeps them at full precision."""
    from rich.table import Table

    table = Table(title=f"{result['name'] or 'query'} ({result['engine']}, {result['row_count']} rows)", title_justify="left")
    for column in result["columns"]:
        table.add_column(column)
    for row in result["rows"]:
        table.add_row(*("" if row[c] is None else str(human_number(row[c])) for c in result["columns"]))
    _console().print(table)


def render_doctor(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("check", "", "detail", "how to fix", title=f"doctor · target {result['target']}", title_justify="left")
    for check in result["checks"]:
        mark = "[green]ok[/]" if check["ok"] else ("[red]missing[/]" if check["required"] else "[yellow]optional[/]")
        table.add_row(check["name"], mark, check["detail"], "" if check["ok"] else check["fix"])
    _console().print(table)
