"""What `radstream status` and `radstream phase list` report: the phases with their status, the
deployment's outputs and, asked for, the drift between the state file and the world."""

from __future__ import annotations

from typing import Any

# Shown first, in this order; every other output follows.
_LEADING = ("endpoint", "state_machine_arn", "buckets")


def phase_rows(state: Any) -> list[dict[str, Any]]:
    from radstream import phases as registry

    rows = []
    for phase in registry.all_phases():
        status_value = state.phase_status(phase.number) if phase.implemented else "not built"
        rows.append({"number": phase.number, "name": phase.name, "status": status_value, "summary": phase.summary})
    return rows


def status_payload(ctx: Any, refresh: bool = False) -> dict[str, Any]:
    """The status `--json` prints; with `refresh`, every phase's checks re-run against the world."""
    outputs = ctx.state.all_outputs()
    payload: dict[str, Any] = {
        "ok": True,
        "deployment": ctx.config.deployment,
        "target": ctx.config.target,
        "phases": phase_rows(ctx.state),
        "outputs": {
            "endpoint": outputs.get("endpoint"),
            "state_machine_arn": outputs.get("state_machine_arn"),
            "buckets": outputs.get("buckets", {}),
            **{k: v for k, v in outputs.items() if k not in _LEADING},
        },
        "updated_at": ctx.state.data.get("updated_at"),
    }
    if refresh:
        from radstream import phases as registry
        from radstream.engine import Engine

        payload["drift"] = Engine(ctx, registry.all_phases()).refresh([n for n, *_ in registry.REGISTRY])
    return payload


def drifted(payload: dict[str, Any]) -> bool:
    return any(d["drift"] for d in payload.get("drift", []))
