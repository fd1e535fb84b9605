"""One CLI invocation: load and validate the config, open the state, take the lock when the command
changes anything, build the context, and turn every failure into a clear message and exit code."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from radstream.errors import Aborted, ConfigError


@dataclass
class Options:
    """The global options, merged from the root callback and the command itself."""

    config: Path | None = None
    json: bool = False
    yes: bool = False
    dry_run: bool = False
    verbose: int = 0
    command: str = "radstream"  # what the run log names the run (radstream.runlog.command_line)

    def merged(self, **local: Any) -> Options:
        merged = Options(**self.__dict__)
        for key, value in local.items():
            if value:
                setattr(merged, key, value)
        return merged



def confirm(question: str, opts: Options) -> None:
    """Ask before destroying; with --yes, proceed. Without a terminal, refuse instead of hanging."""
    if opts.yes:
        return
    if opts.json or not sys.stdin.isatty():
        raise ConfigError(f"{question} needs confirmation", hint="re-run with --yes")
    import typer

    if not typer.confirm(question, default=False, err=True):
        raise Aborted("aborted; nothing was changed")


def confirm_billable(ctx: Any, numbers: list[int], opts: Options) -> None:
    """Ask before applying phases to an AWS account, as `up`, `demo` and `phase run` do. Every phase
    asks, not only the billable ones: 0–5 create resources that bill by the hour, 6 runs studies
    (Lambda, Step Functions and S3 requests), and 7, which scales the nodegroup to zero, takes the
    running pipeline down. The sandbox costs nothing and changes no account: no question."""
    if not ctx.target.billable:
        return
    phases = ", ".join(map(str, numbers))
    confirm(f"Create, update or run RadStream resources (phase {phases}) of deployment {ctx.config.deployment!r} "
            "in your AWS account? They cost money.", opts)


@contextmanager
def open_context(opts: Options, command: str, lock: bool) -> Iterator[Any]:
    """Yield a ready Context; hold the deployment lock for commands that change things."""
    from radstream import config as config_mod
    from radstream.context import Context
    from radstream.reporting import RichReporter
    from radstream.runlog import attach
    from radstream.state import DeploymentLock, State

    loaded = config_mod.load(opts.config)
    attach(loaded.state_dir, command, loaded.settings.deployment, loaded.settings.target)
    reporter = RichReporter(opts.verbose)
    guard = DeploymentLock(loaded.state_dir, command) if lock else None
    try:
        if guard is not None:
            guard.acquire()
            if guard.taken_over:
                held = guard.taken_over
                reporter.warn(
                    f"took over a stale lock left by `{held.get('command')}` (PID {held.get('pid')} on "
                    f"{held.get('host')}, since {held.get('since')}): that process is gone"
                )
        state = State.load(loaded.state_dir, loaded.settings.deployment, loaded.settings.target)
        yield Context(loaded, state, reporter)
    finally:
        reporter.close()
        if guard is not None:
            guard.release()
