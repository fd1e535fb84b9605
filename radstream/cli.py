"""The `radstream` command line. Thin: parse options, call the engine or a module, render.

Heavy libraries (boto3, kubernetes, numpy, onnx…) are imported inside the commands that use them so
`radstream --help` stays instant."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from radstream.commands import ab as ab_commands
from radstream.commands import analytics as analytics_commands
from radstream.commands import bench as bench_commands
from radstream.commands import deid as deid_commands
from radstream.commands import ingest as ingest_commands
from radstream.commands import kubeconfig as kubeconfig_commands
from radstream.commands import load as load_commands
from radstream.commands import model as model_commands
from radstream.commands import render as render_commands
from radstream.commands import sandbox as sandbox_commands
from radstream.commands import security as security_commands
from radstream.commands import watch as watch_commands
from radstream.commands.common import ConfigOpt, DryRunOpt, JsonOpt, VerboseOpt, YesOpt, emit, options, run_command
from radstream.session import Options, confirm, confirm_billable, open_context

app = typer.Typer(
    name="radstream",
    help="Turn an AWS account (or the local sandbox) into a chest X-ray inference pipeline, and back to zero cost.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
phase_app = typer.Typer(help="List, run and destroy single phases.", no_args_is_help=True)
app.add_typer(phase_app, name="phase")
app.add_typer(sandbox_commands.app, name="sandbox")
app.add_typer(model_commands.app, name="model")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(kubeconfig_commands.app, name="kubeconfig")
app.add_typer(security_commands.app, name="security")
app.command("deid")(deid_commands.deid)
app.command("ingest")(ingest_commands.ingest)
app.command("load")(load_commands.load)
app.command("ab")(ab_commands.ab)
app.command("watch")(watch_commands.watch)
app.command("query")(analytics_commands.query)
app.command("report")(analytics_commands.report)
app.command("cost")(analytics_commands.cost)
app.command("render")(render_commands.render)


def _print_version(asked: bool) -> None:
    if asked:
        from radstream import __version__

        typer.echo(f"radstream {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    ctx.obj = Options(config=config, json=json_output, yes=yes, dry_run=dry_run, verbose=verbose)


def plan_exit_code(result: Any, detailed: bool) -> int:
    """1 when planning failed; with --detailed-exitcode (as Terraform's) 2 when there are changes."""
    if not result.ok:
        return 1
    return 2 if detailed and any(p.changes for p in result.phases) else 0


def _apply(opts: Options, command: str, numbers: list[int], detailed: bool = False) -> int:
    from radstream import phases as registry
    from radstream.engine import Engine
    from radstream.render import render_run

    with open_context(opts, command, lock=not opts.dry_run) as ctx:
        engine = Engine(ctx, registry.all_phases())
        # The local sandbox costs nothing and plans need a world to read, even on a dry run.
        ctx.ensure_target_running()
        if opts.dry_run:
            result = engine.plan(numbers)
            emit(engine.report(result) | {"dry_run": True}, opts.json, render_run)
            return plan_exit_code(result, detailed)
        confirm_billable(ctx, numbers, opts)
        result = engine.run(numbers)
        emit(engine.report(result), opts.json, render_run)
        return 0 if result.ok else 1


# -- project setup --------------------------------------------------------------------------------
@app.command()
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Write a commented radstream.yaml with every setting and its default."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import config as config_mod
        from radstream.errors import ConfigError

        path = config_mod.resolve_path(opts.config)
        if path.exists() and not force:
            raise ConfigError(f"{path} already exists", hint="use --force to overwrite it")
        path.write_text(config_mod.template())
        emit({"ok": True, "path": str(path)}, opts.json, lambda r: print(f"wrote {r['path']}", file=sys.stderr))
        return 0

    run_command(opts, body)


@app.command()
def doctor(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """Check what the chosen target needs, and say how to get what is missing."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import config as config_mod
        from radstream.doctor import run_checks
        from radstream.render import render_doctor

        loaded = config_mod.load(opts.config)
        checks = run_checks(loaded)
        ok = all(c["ok"] or not c["required"] for c in checks)
        emit({"ok": ok, "target": loaded.settings.target, "checks": checks}, opts.json, render_doctor)
        return 0 if ok else 1

    run_command(opts, body)


# -- the lifecycle --------------------------------------------------------------------------------
@app.command()
def plan(
    ctx: typer.Context,
    phase: Annotated[list[str] | None, typer.Argument(help="Phases to plan (default: those `up` applies).")] = None,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on an error (as Terraform).")] = False,
) -> None:
    """Show what `up` would change, step by step, without changing anything."""
    opts = options(ctx, config=config, json=json_output, dry_run=True)

    def body() -> int:
        from radstream import phases as registry

        numbers = [registry.resolve(p) for p in phase] if phase else list(registry.UP_PHASES)
        return _apply(opts, "plan", numbers, detailed=detailed_exitcode)

    run_command(opts, body)


@app.command()
def up(
    ctx: typer.Context,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Apply phases 0–5: from nothing (or anything in between) to a running pipeline. Resumable."""
    opts = options(ctx, config=config, json=json_output, yes=yes, dry_run=dry_run, verbose=verbose)

    def body() -> int:
        from radstream import phases as registry

        return _apply(opts, "up", list(registry.UP_PHASES))

    run_command(opts, body)


@app.command()
def demo(
    ctx: typer.Context,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Bring the pipeline up if needed, then run real studies through it (phase 6)."""
    opts = options(ctx, config=config, json=json_output, yes=yes, verbose=verbose)

    def body() -> int:
        from radstream import phases as registry

        return _apply(opts, "demo", [*registry.UP_PHASES, registry.DEMO_PHASE])

    run_command(opts, body)


@app.command()
def teardown(
    ctx: typer.Context,
    stop_sandbox: Annotated[bool, typer.Option(
        "--stop-sandbox", help="Sandbox target: also stop the local daemon afterwards.")] = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Destroy every phase in reverse order, then prove nothing tagged with this deployment is left
    (waiting a bounded time for deletes AWS finishes in the background). Leftovers exit 1."""
    opts = options(ctx, config=config, json=json_output, yes=yes, verbose=verbose)

    def body() -> int:
        from radstream.render import render_run
        from radstream.teardown import run_teardown

        with open_context(opts, "teardown", lock=True) as rctx:
            payload = run_teardown(rctx, lambda question: confirm(question, opts), stop_sandbox)
            emit(payload, opts.json, render_run)
            return 0 if payload["ok"] else 1

    run_command(opts, body)


@app.command()
def status(
    ctx: typer.Context,
    refresh: Annotated[bool, typer.Option("--refresh", help="Re-run every check against the real world to find drift.")] = False,
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Phases, outputs (endpoint, state machine, buckets) and, with --refresh, drift."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream.render import render_status
        from radstream.status import drifted, status_payload

        with open_context(opts, "status", lock=False) as sctx:
            payload = status_payload(sctx, refresh)
        emit(payload, opts.json, render_status)
        return 1 if drifted(payload) else 0

    run_command(opts, body)


@app.command()
def unlock(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """Remove a lock left behind by a run that is gone."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import config as config_mod
        from radstream.state import DeploymentLock, force_unlock

        state_dir = config_mod.load(opts.config).state_dir
        # Taking the lock proves no live run holds it; a live holder makes this exit 3.
        with DeploymentLock(state_dir, "unlock") as lock:
            previous = lock.taken_over
        force_unlock(state_dir)
        emit({"ok": True, "removed": previous}, opts.json,
             lambda r: print(f"removed lock of {r['removed']}" if r["removed"] else "no lock was held", file=sys.stderr))
        return 0

    run_command(opts, body)


# -- single phases --------------------------------------------------------------------------------
@phase_app.command("list")
def phase_list(ctx: typer.Context, config: ConfigOpt = None, json_output: JsonOpt = False) -> None:
    """The eight phases, in order, with their status."""
    opts = options(ctx, config=config, json=json_output)

    def body() -> int:
        from radstream import config as config_mod
        from radstream.render import render_phase_list
        from radstream.state import State
        from radstream.status import phase_rows

        loaded = config_mod.load(opts.config)
        state = State.load(loaded.state_dir, loaded.settings.deployment, loaded.settings.target)
        emit({"phases": phase_rows(state)}, opts.json, render_phase_list)
        return 0

    run_command(opts, body)


@phase_app.command("run")
def phase_run(
    ctx: typer.Context,
    phase: Annotated[str, typer.Argument(help="Phase number or name.")],
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Apply one phase (resuming where a previous run stopped)."""
    opts = options(ctx, config=config, json=json_output, yes=yes, dry_run=dry_run, verbose=verbose)

    def body() -> int:
        from radstream import phases as registry

        return _apply(opts, f"phase run {phase}", [registry.resolve(phase)])

    run_command(opts, body)


@phase_app.command("destroy")
def phase_destroy(
    ctx: typer.Context,
    phase: Annotated[str, typer.Argument(help="Phase number or name.")],
    config: ConfigOpt = None,
    json_output: JsonOpt = False,
    yes: YesOpt = False,
    verbose: VerboseOpt = 0,
) -> None:
    """Undo one phase (quiet about what is already gone)."""
    opts = options(ctx, config=config, json=json_output, yes=yes, verbose=verbose)

    def body() -> int:
        from radstream import phases as registry
        from radstream.engine import Engine
        from radstream.render import render_run

        number = registry.resolve(phase)
        with open_context(opts, f"phase destroy {phase}", lock=True) as dctx:
            confirm(f"Destroy phase {number} of deployment {dctx.config.deployment!r} ({dctx.config.target})?", opts)
            dctx.ensure_target_running()
            engine = Engine(dctx, registry.all_phases())
            result = engine.destroy([number])
            emit(engine.report(result), opts.json, render_run)
            return 0 if result.ok else 1

    run_command(opts, body)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
