"""Progress on stderr: a live view of phases and steps, a spinner with elapsed time on every wait.

Everything here writes to stderr so stdout stays clean for `--json`."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter:
    """Silent base: used by tests and library callers that want no output."""

    def phase_started(self, number: int, name: str, resumed_at: str | None = None) -> None: ...
    def phase_finished(self, number: int, name: str, status: str, seconds: float, mutations: int) -> None: ...
    def step_started(self, number: int, step: str) -> None: ...
    def step_finished(self, number: int, step: str, status: str, seconds: float) -> None: ...
    def log(self, message: str) -> None: ...
    def warn(self, message: str) -> None: ...

    @contextmanager
    def waiting(self, description: str, timeout: float) -> Iterator[None]:
        yield

    def close(self) -> None: ...


class RichReporter(Reporter):
    def __init__(self, verbose: int = 0):
        from rich.console import Console
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.verbose = verbose
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[tuple[int, str], TaskID] = {}
        self._started = False

    def _ensure(self) -> None:
        # Without a terminal (CI, pipes, logs) a live display cannot redraw: print plain lines.
        if not self._started and self.console.is_terminal:
            self.progress.start()
            self._started = True

    def _plain(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def phase_started(self, number: int, name: str, resumed_at: str | None = None) -> None:
        self._ensure()
        suffix = f" [yellow](resuming at {resumed_at})[/]" if resumed_at else ""
        self.console.print(f"[bold]Phase {number} · {name}[/]{suffix}")

    def phase_finished(self, number: int, name: str, status: str, seconds: float, mutations: int) -> None:
        colour = {"done": "green", "skipped": "cyan", "failed": "red"}.get(status, "white")
        self.console.print(
            f"  [{colour}]{status}[/] phase {number} · {name} in {seconds:.1f}s, {mutations} change(s)"
        )

    def step_started(self, number: int, step: str) -> None:
        self._ensure()
        if self._started:
            self._tasks[(number, step)] = self.progress.add_task(f"  {step}", total=1)

    def step_finished(self, number: int, step: str, status: str, seconds: float) -> None:
        label = {"done": "[green]done[/]", "skipped": "[cyan]up to date[/]", "failed": "[red]failed[/]"}.get(status, status)
        task = self._tasks.pop((number, step), None)
        if task is not None:
            self.progress.update(task, description=f"  {step} · {label}", completed=1)
            self.progress.stop_task(task)
        elif not self._started:
            self._plain(f"  {step} · {label} ({seconds:.1f}s)")

    def log(self, message: str) -> None:
        self.console.print(f"    {message}", style="dim", markup=False, highlight=False)

    def warn(self, message: str) -> None:
        from radstream.runlog import RUN

        self.console.print(f"[yellow]warning:[/] {message}")
        RUN.warning(message)

    @contextmanager
    def waiting(self, description: str, timeout: float) -> Iterator[None]:
        self._ensure()
        start = time.monotonic()
        if not self._started:
            self._plain(f"    waiting for {description} (up to {timeout:.0f}s)…")
            try:
                yield
            finally:
                self._plain(f"    … {description}: {time.monotonic() - start:.1f}s")
            return
        task = self.progress.add_task(f"    ⏳ {description} (up to {timeout:.0f}s)", total=None)
        try:
            yield
        finally:
            self.progress.update(
                task, description=f"    {description} · {time.monotonic() - start:.1f}s", total=1, completed=1
            )
            self.progress.stop_task(task)

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False
