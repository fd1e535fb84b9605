"""`radstream teardown`: destroy every phase in reverse, then prove nothing tagged is left."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from radstream.context import Context


def _nothing_deployed(ctx: Context) -> bool:
    from radstream.aws.inventory import deployment_resources

    recorded = [n for n, entry in ctx.state.data["phases"].items() if entry.get("status") not in ("pending", "destroyed")]
    if recorded:
        return False
    return ctx.target.account_discarded() or not deployment_resources(ctx.client, ctx.config.deployment)


def run_teardown(ctx: Context, confirm: Callable[[str], None], stop_sandbox: bool = False) -> dict[str, Any]:
    from radstream import phases as registry
    from radstream.aws.inventory import settled_leftovers
    from radstream.engine import Engine, RunResult

    deployment = ctx.config.deployment
    engine = Engine(ctx, registry.all_phases())
    if _nothing_deployed(ctx):
        payload = engine.report(RunResult([])) | {"leftovers": [], "message": "nothing to tear down"}
    else:
        confirm(f"Destroy every resource of deployment {deployment!r} ({ctx.config.target})?")
        ctx.ensure_target_running()
        result = engine.destroy([n for n, *_ in registry.REGISTRY], teardown=True)
        ctx.log(f"checking that nothing tagged radstream:deployment={deployment} is left")
        leftovers = settled_leftovers(ctx.client, deployment, ctx.wait)
        payload = engine.report(result) | {"leftovers": leftovers}
        payload["ok"] = result.ok and not leftovers
        if leftovers and not payload["error"]:
            payload["error"] = f"{len(leftovers)} resource(s) still carry this deployment's tag"
    return payload | ctx.target.finish_teardown(stop_sandbox, ctx.warn)
