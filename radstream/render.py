"""Human renderings of command results: tables for status, plan and runs (stderr-free of JSON)."""

from __future__ import annotations

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


def render_status(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    render_phase_list(result)
    outputs = Table("output", "value", title="outputs", title_justify="left")
    for key, value in result["outputs"].items():
        if value:
            outputs.add_row(key, str(value))
    console.print(outputs)
    drift = [d for d in result.get("drift", []) if d["drift"]]
    if "drift" in result:
        if drift:
            console.print(f"[red]drift in {len(drift)} step(s):[/]")
            for d in drift:
                console.print(f"  phase {d['phase']} {d['step']}: recorded {d['recorded']}, actually {d['actual']}")
        else:
            console.print("[green]no drift: the world matches the state file[/]")


def render_doctor(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table("check", "", "detail", "how to fix", title=f"doctor · target {result['target']}", title_justify="left")
    for check in result["checks"]:
        mark = "[green]ok[/]" if check["ok"] else ("[red]missing[/]" if check["required"] else "[yellow]optional[/]")
        table.add_row(check["name"], mark, check["detail"], "" if check["ok"] else check["fix"])
    _console().print(table)
