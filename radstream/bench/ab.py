"""`radstream ab NAME`: the plan's A/B tests. The same load runs under configuration A (the deployment
as it is) and then B, in one run, and every figure is reported with its ratio B / A.

- `batch`: Triton's dynamic batching as configured (A) against B's batch size and queue delay. The
  model is reloaded with B's configuration through Triton's model-control API, then with A's. It needs a Triton the command can reach one by one: the sandbox's. On EKS every pod
  would have to be reloaded, and a pod the HPA adds would start from the image: not done there.
- `lambda-memory`: the functions' memory as deployed (A) against B's. Lambda gives CPU in
  proportion to memory, so on AWS this moves every stage's time; the sandbox runs each function on
  this machine's CPU whatever its memory, so there it says so and runs nothing.
- `autoscaling`: the HPA as deployed (A) against the HPA held at its minimum (B: maxReplicas =
  minReplicas, which the HPA applies at once). The load only moves replicas when it crosses
  triton.target_cpu_utilization (on the sandbox, see README's Monitoring).

Whatever an experiment changes is put back when it ends, also after an error or Ctrl-C."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radstream.errors import RadstreamError

# The figures compared, as (name, how to read it from a load summary).
FIGURES: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("throughput_per_min", lambda s: s.get("throughput_per_min")),
    ("p50_ms", lambda s: s.get("p50_ms")),
    ("p95_ms", lambda s: s.get("p95_ms")),
    ("inference_p50_ms", lambda s: ((s.get("stages") or {}).get("inference") or {}).get("p50_ms")),
    ("prepare_p50_ms", lambda s: ((s.get("stages") or {}).get("prepare") or {}).get("p50_ms")),
    ("replicas_max", lambda s: s.get("replicas_max")),
    ("failed", lambda s: s.get("failed")),
    ("lost", lambda s: s.get("lost")),
)


@dataclass(frozen=True)
class Variant:
    label: str  # "A" or "B"
    description: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str
    # (ctx, options) -> the reason it cannot run on this target, or None
    not_applicable: Callable[[Any, Mapping[str, Any]], str | None]
    # (ctx, options) -> (A, B): A is what is deployed now
    variants: Callable[[Any, Mapping[str, Any]], tuple[Variant, Variant]]
    # (ctx, variant) -> a context in which the deployment runs as `variant` says
    applied: Callable[[Any, Variant], AbstractContextManager[None]]


# -- batch ----------------------------------------------------------------------------------------
def batch_config(config: Mapping[str, Any], max_batch_size: int, queue_delay_us: int) -> dict[str, Any]:
    """A Triton model configuration (its JSON form) with another batch size and queue delay; a batch
    size of 1 turns dynamic batching off."""
    changed = copy.deepcopy(dict(config))
    changed["max_batch_size"] = max_batch_size
    if max_batch_size <= 1:
        changed.pop("dynamic_batching", None)
    else:
        batching = dict(changed.get("dynamic_batching") or {})
        preferred = [n for n in batching.get("preferred_batch_size") or [] if n <= max_batch_size] or [max_batch_size]
        batching.update(preferred_batch_size=preferred, max_queue_delay_microseconds=queue_delay_us)
        changed["dynamic_batching"] = batching
    return changed


def _describe_batching(config: Mapping[str, Any]) -> str:
    batching = config.get("dynamic_batching")
    if not batching:
        return f"max batch {config.get('max_batch_size')}, dynamic batching off"
    return (f"max batch {config.get('max_batch_size')}, preferred {batching.get('preferred_batch_size')}, "
            f"queue delay {batching.get('max_queue_delay_microseconds', 0)} us")


def _triton(ctx: Any) -> Any:
    from radstream.inference.client import TritonClient

    url = ctx.target.triton_control_url()
    if url is None:
        raise RadstreamError("this target has no Triton the command can reconfigure directly")
    return TritonClient(url)


def _batch_not_applicable(ctx: Any, options: Mapping[str, Any]) -> str | None:
    if ctx.target.triton_control_url() is None:
        return ("Triton's batching is changed here by reloading the model through Triton's model-control API, "
                "which needs every serving Triton reachable one by one: the sandbox's is; EKS pods behind the load "
                "balancer are not. Change the model's config.pbtxt and run phase 2 to compare on aws.")
    return None


def _batch_variants(ctx: Any, options: Mapping[str, Any]) -> tuple[Variant, Variant]:
    with _triton(ctx) as triton:
        current = triton.config()
    b = batch_config(current, int(options["max_batch_size"]), int(options["queue_delay_us"]))
    return (Variant("A", _describe_batching(current), {"config": current}),
            Variant("B", _describe_batching(b), {"config": b, "restore": current}))


@contextmanager
def _batch_applied(ctx: Any, variant: Variant) -> Iterator[None]:
    if variant.label == "A":
        yield
        return
    with _triton(ctx) as triton:
        triton.load(variant.settings["config"])
        try:
            yield
        finally:
            # A load without a configuration keeps the last one while the repository is unchanged.
            triton.load(variant.settings["restore"])


# -- lambda memory --------------------------------------------------------------------------------
def _memory_not_applicable(ctx: Any, options: Mapping[str, Any]) -> str | None:
    if not ctx.target.lambda_memory_matters:
        return ("the sandbox runs every function on this machine's CPU whatever its memory size; on AWS, Lambda "
                "gives CPU in proportion to memory (a full vCPU at 1,769 MB), so run this on the aws target")
    return None


def _memory_variants(ctx: Any, options: Mapping[str, Any]) -> tuple[Variant, Variant]:
    from radstream.aws.lambda_ import function_memory
    from radstream.names import LAMBDA_FUNCTIONS

    lam = ctx.client("lambda")
    current = {fn: function_memory(lam, ctx.names.lambda_function(fn)) for fn in LAMBDA_FUNCTIONS}
    b = {fn: int(options["memory_mb"]) for fn in LAMBDA_FUNCTIONS}
    return (Variant("A", f"memory as deployed: {sorted(set(current.values()))} MB", {"memory": current}),
            Variant("B", f"every function at {options['memory_mb']} MB", {"memory": b}))


@contextmanager
def _memory_applied(ctx: Any, variant: Variant) -> Iterator[None]:
    from radstream.aws.lambda_ import function_memory, set_function_memory

    if variant.label == "A":
        yield
        return
    lam = ctx.client("lambda")
    before = {fn: function_memory(lam, ctx.names.lambda_function(fn)) for fn in variant.settings["memory"]}
    try:
        for fn, memory in variant.settings["memory"].items():
            set_function_memory(lam, ctx.names.lambda_function(fn), memory)
        yield
    finally:
        for fn, memory in before.items():
            set_function_memory(lam, ctx.names.lambda_function(fn), memory)


# -- autoscaling ----------------------------------------------------------------------------------
def _autoscaling_variants(ctx: Any, options: Mapping[str, Any]) -> tuple[Variant, Variant]:
    from radstream.kube.scaling import triton_scale

    scale = triton_scale(ctx)
    if scale["min"] is None:
        raise RadstreamError("the Triton HPA is not deployed", hint="run `radstream up` first")
    return (Variant("A", f"HPA on: {scale['min']}..{scale['max']} replicas at {scale['target_cpu_utilization']} % CPU",
                    {"max": scale["max"]}),
            Variant("B", f"HPA held at {scale['min']} replica(s)", {"max": scale["min"]}))


@contextmanager
def _autoscaling_applied(ctx: Any, variant: Variant) -> Iterator[None]:
    from radstream.kube.scaling import hold_autoscaler, wait_replicas

    if variant.label == "A":
        yield
        return
    with hold_autoscaler(ctx, variant.settings["max"]):
        wait_replicas(ctx, variant.settings["max"])
        yield


EXPERIMENTS = {
    "batch": Experiment("batch", "Triton batch size and queue delay", _batch_not_applicable, _batch_variants,
                        _batch_applied),
    "lambda-memory": Experiment("lambda-memory", "Lambda memory (and so CPU) of every function", _memory_not_applicable,
                                _memory_variants, _memory_applied),
    "autoscaling": Experiment("autoscaling", "Triton's HPA on against held at its minimum", lambda ctx, o: None,
                              _autoscaling_variants, _autoscaling_applied),
}


# -- the run --------------------------------------------------------------------------------------
def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each figure under A and B and its ratio B / A (None when A is 0 or either is missing)."""
    rows = []
    for name, read in FIGURES:
        va, vb = read(a), read(b)
        ratio = round(vb / va, 3) if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and va else None
        rows.append({"figure": name, "a": va, "b": vb, "ratio": ratio})
    return rows


def run(ctx: Any, name: str, options: Mapping[str, Any], load: Callable[[Any], Mapping[str, Any]],
        warm_up: Callable[[Any], Any], progress: Callable[[str], None] = lambda _: None,
        confirm: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run experiment `name`: `confirm(what B changes)` (which may refuse by raising), `warm_up(ctx)`
    (so A does not pay for cold workers), then `load(ctx)` once under A and once under B. Not
    applicable: nothing runs."""
    experiment = EXPERIMENTS.get(name)
    if experiment is None:
        raise RadstreamError(f"no A/B test called {name!r}", hint=f"choose one of: {', '.join(EXPERIMENTS)}")
    result: dict[str, Any] = {"experiment": name, "summary": experiment.summary, "target": ctx.config.target}
    reason = experiment.not_applicable(ctx, options)
    if reason:
        return {**result, "applicable": False, "reason": reason, "variants": None, "figures": None}
    a, b = experiment.variants(ctx, options)
    confirm(f"A: {a.description}; B: {b.description}")
    progress("warming up")
    warm_up(ctx)
    summaries = {}
    for variant in (a, b):
        progress(f"{variant.label}: {variant.description}")
        with experiment.applied(ctx, variant):
            summaries[variant.label] = load(ctx)
    return {**result, "applicable": True, "reason": None,
            "variants": {v.label: {"description": v.description, "run_id": summaries[v.label].get("run_id"),
                                   "schedule": summaries[v.label].get("schedule")} for v in (a, b)},
            "figures": compare(summaries["A"], summaries["B"])}


def write_exports(out_dir: Path, result: Mapping[str, Any]) -> dict[str, str]:
    """ab-<name>-<A's run id>.json and .csv (figure, a, b, ratio) in `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"ab-{result['experiment']}-{(result['variants'] or {}).get('A', {}).get('run_id') or 'not-run'}"
    json_path, csv_path = out_dir / f"{stem}.json", out_dir / f"{stem}.csv"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["figure", "a", "b", "ratio"])
        writer.writeheader()
        writer.writerows(result["figures"] or [])
    return {"json": str(json_path), "csv": str(csv_path)}


def format_table(result: Mapping[str, Any]) -> str:
    if not result["applicable"]:
        return f"ab {result['experiment']}: not run on {result['target']}: {result['reason']}"
    from radstream.bench.text import table

    return "\n".join([f"ab {result['experiment']} ({result['summary']}) on {result['target']}:",
                      f"  A: {result['variants']['A']['description']}", f"  B: {result['variants']['B']['description']}", "",
                      *table([("figure", 20), ("A", 12), ("B", 12), ("B / A", 9)],
                             ([row["figure"], _cell(row["a"]), _cell(row["b"]), _cell(row["ratio"])]
                              for row in result["figures"]), indent="  ")])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:,.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
