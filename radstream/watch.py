"""`radstream watch`'s snapshot: the figures an on-call engineer looks at, from what the sources
returned (pure), how the live view shows them, and `gather`, which asks each source (Step Functions,
CloudWatch, Prometheus, the cluster) and keeps going when one fails."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from radstream.loadtest import percentile


def execution_figures(executions: Sequence[Mapping[str, Any]], window_s: float) -> dict[str, Any]:
    """Executions started in the window, by status, per minute, and the finished ones' duration."""
    durations = [(e["stopDate"] - e["startDate"]).total_seconds() * 1000 for e in executions if e.get("stopDate")]
    counts = {status: sum(1 for e in executions if e["status"] == status)
              for status in ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")}
    return {"started": len(executions), "per_minute": round(len(executions) * 60 / window_s, 2),
            "running": counts["RUNNING"], "succeeded": counts["SUCCEEDED"],
            "failed": counts["FAILED"] + counts["TIMED_OUT"] + counts["ABORTED"],
            "p50_ms": percentile(durations, 50), "p95_ms": percentile(durations, 95)}


def snapshot(deployment: str, target: str, at: datetime, window_s: int, sections: Mapping[str, Any],
             errors: Mapping[str, str]) -> dict[str, Any]:
    """What `watch --once --json` prints. A section whose source failed is null, with its error."""
    executions = sections.get("executions")
    return {
        "ok": not errors, "deployment": deployment, "target": target,
        "at": at.isoformat(timespec="seconds"), "window_s": window_s,
        "executions": execution_figures(executions, window_s) if executions is not None else None,
        "failures_by_reason": sections.get("failures_by_reason"),
        "triton": sections.get("triton"),
        "scaling": sections.get("scaling"),
        "lambda_errors": sections.get("lambda_errors"),
        "errors": dict(errors),
    }


def gather(ctx: Any, window_s: int) -> dict[str, Any]:
    """One snapshot of the deployment in `ctx` over the last `window_s` seconds."""
    from radstream.aws.activity import executions_since, lambda_errors, sums_by
    from radstream.documents import state_machine_arn
    from radstream.kube.scaling import triton_scale
    from radstream.names import LAMBDA_FUNCTIONS
    from radstream.pipeline.metrics import DIMENSION, FAILED, NAMESPACE, REASON_DIMENSION

    until = datetime.now(timezone.utc)
    since = until - timedelta(seconds=window_s)
    names, errors, sections = ctx.names, {}, {}

    def attempt(section: str, fetch: Callable[[], Any]) -> None:
        try:
            sections[section] = fetch()
        except Exception as exc:  # noqa: BLE001 - one source down must not blank the others
            errors[section] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    cw = ctx.client("cloudwatch")
    attempt("executions", lambda: executions_since(ctx.client("stepfunctions"), state_machine_arn(names), since))
    attempt("failures_by_reason", lambda: sums_by(cw, NAMESPACE, FAILED, {DIMENSION: names.deployment}, REASON_DIMENSION,
                                                  since, until))
    attempt("lambda_errors", lambda: lambda_errors(cw, [names.lambda_function(f) for f in LAMBDA_FUNCTIONS], since, until))
    attempt("triton", lambda: _triton(ctx, window_s))
    attempt("scaling", lambda: triton_scale(ctx))
    return snapshot(names.deployment, ctx.config.target, until, window_s, sections, errors)


def _triton(ctx: Any, window_s: int) -> dict[str, Any]:
    from radstream.errors import RadstreamError
    from radstream.inference.triton_metrics import triton_figures

    url = ctx.target.prometheus_url()
    if not url:
        raise RadstreamError("no Prometheus scrapes Triton: set observability.prometheus_url")
    return {**triton_figures(url, window_s), "source": url}


def _value(value: Any, unit: str = "") -> str:
    return "—" if value is None else f"{value}{unit}"


def render(view: Mapping[str, Any]) -> Any:
    """A Rich renderable of one snapshot."""
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"{view['deployment']} ({view['target']}) · last {view['window_s']} s · {view['at']}",
                  show_header=False, expand=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    runs = view.get("executions") or {}
    table.add_row("executions / min", _value(runs.get("per_minute")))
    table.add_row("started · running · succeeded · failed",
                  " · ".join(_value(runs.get(k)) for k in ("started", "running", "succeeded", "failed")))
    table.add_row("execution p50 / p95", f"{_value(runs.get('p50_ms'), ' ms')} / {_value(runs.get('p95_ms'), ' ms')}")
    failures = view.get("failures_by_reason")
    table.add_row("failures by reason", ", ".join(f"{k} {v}" for k, v in failures.items()) if failures else _value(
        None if failures is None else "none"))
    triton = view.get("triton") or {}
    table.add_row("Triton requests / s", _value(triton.get("requests_per_s")))
    table.add_row("Triton queue / compute", f"{_value(triton.get('queue_ms'), ' ms')} / {_value(triton.get('compute_ms'), ' ms')}")
    scaling = view.get("scaling") or {}
    table.add_row("Triton replicas (ready / desired, min-max)",
                  f"{_value(scaling.get('replicas'))} ({_value(scaling.get('ready'))} / {_value(scaling.get('desired'))}, "
                  f"{_value(scaling.get('min'))}-{_value(scaling.get('max'))})")
    table.add_row("HPA CPU / target", f"{_value(scaling.get('cpu_utilization'), ' %')} / "
                                      f"{_value(scaling.get('target_cpu_utilization'), ' %')} ({_value(scaling.get('metrics'))})")
    errors = view.get("lambda_errors")
    table.add_row("Lambda errors", ", ".join(f"{k} {v}" for k, v in errors.items() if v) or "none" if errors is not None else "—")
    notes = [f"[yellow]{section}: {message}[/]" for section, message in (view.get("errors") or {}).items()]
    return Group(table, *notes)
