"""The evidence pack: one Markdown file (with its PNGs beside it) and one self-contained HTML file
(the same PNGs embedded as base64) — architecture, phases and timings, the model that answered
(trained or not, on what, its licence), latency, throughput (with the load runs shaded),
failures, cost and the teardown proof.

`build` and `write` take plain dicts and rows, so the report is tested without any cloud; `gather`
collects those inputs from a live context, section by section: a section that cannot be gathered
says why instead of failing the report."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ARCHITECTURE = """\
image (+ JSON sidecar) or DICOM
   │
   ▼
S3 images bucket ──► EventBridge rule ──► Step Functions pipeline
   ValidateInput ─► PrepareImage ─► InvokeInference ─► StoreResults ─► SendTelemetry
        │ (Catch on every state) ─────────────────────────► StoreFailure (quarantine)
   InvokeInference ──► Triton (ONNX) behind a LoadBalancer Service on EKS
   StoreResults ──► S3 results bucket
   SendTelemetry ──► Kinesis ──► Firehose ──► S3 raw_telemetry/ ──► Glue table ──► Athena"""

_STYLE = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #345}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#eef2f5}pre{background:#f6f8fa;padding:1em;overflow-x:auto}img{max-width:100%}
.note{color:#666;font-style:italic}
"""


# -- the document model: one list of blocks, rendered twice ---------------------------------------
@dataclass
class Image:
    name: str  # file name next to report.md
    alt: str
    png: bytes


@dataclass
class Section:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def text(self, value: str) -> Section:
        self.blocks.append(("text", value))
        return self

    def note(self, value: str) -> Section:
        self.blocks.append(("note", value))
        return self

    def pre(self, value: str) -> Section:
        self.blocks.append(("pre", value))
        return self

    def table(self, headers: list[str], rows: list[list[Any]]) -> Section:
        self.blocks.append(("table", (headers, rows)))
        return self

    def image(self, image: Image | None) -> Section:
        if image is not None:
            self.blocks.append(("image", image))
        return self


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.6f}".rstrip("0").rstrip(".") if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for kind, value in section.blocks:
            if kind in ("text", "note"):
                out += [f"_{value}_" if kind == "note" else value, ""]
            elif kind == "pre":
                out += ["```", value, "```", ""]
            elif kind == "table":
                headers, rows = value
                out.append("| " + " | ".join(headers) + " |")
                out.append("|" + "---|" * len(headers))
                out += ["| " + " | ".join(_cell(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "image":
                out += [f"![{value.alt}]({value.name})", ""]
    return "\n".join(out)


def to_html(title: str, sections: list[Section]) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
           f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>"]
    for section in sections:
        out.append(f"<section><h2>{esc(section.title)}</h2>")
        for kind, value in section.blocks:
            if kind == "text":
                out.append(f"<p>{esc(value)}</p>")
            elif kind == "note":
                out.append(f'<p class="note">{esc(value)}</p>')
            elif kind == "pre":
                out.append(f"<pre>{esc(value)}</pre>")
            elif kind == "table":
                headers, rows = value
                out.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>")
                out += ["<tr>" + "".join(f"<td>{esc(_cell(c))}</td>" for c in row) + "</tr>" for row in rows]
                out.append("</table>")
            elif kind == "image":
                data = base64.b64encode(value.png).decode()
                out.append(f'<figure><img alt="{esc(value.alt)}" src="data:image/png;base64,{data}"></figure>')
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


# -- charts ---------------------------------------------------------------------------------------
def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")  # no display here, and never a GUI backend in a CLI
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(width, height), dpi=100)


def _png(plt: Any, fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def architecture_chart() -> Image:
    plt, (fig, ax) = _figure(10, 4.2)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 4.2)
    ax.axis("off")
    columns = [0.1 + 2.0 * k for k in range(5)]
    top, middle, bottom = 3.3, 1.8, 0.3
    boxes = {
        "upload": (columns[0], top, "Study upload\n(image + sidecar\nor DICOM)"), "s3in": (columns[1], top, "S3 images"),
        "eb": (columns[2], top, "EventBridge"), "sfn": (columns[3], top, "Step Functions\npipeline"),
        "lambdas": (columns[4], top, "Lambdas: validate,\nprepare, infer, store"),
        "triton": (columns[4], middle, "Triton (ONNX)\non EKS, via LB"), "results": (columns[3], middle, "S3 results\nand failed/"),
        "kinesis": (columns[0], bottom, "Kinesis"), "firehose": (columns[1], bottom, "Firehose"),
        "raw": (columns[2], bottom, "S3 raw_telemetry/"), "glue": (columns[3], bottom, "Glue table"),
        "athena": (columns[4], bottom, "Athena (aws)\nDuckDB (sandbox)"),
    }
    width, height = 1.6, 0.8
    for x, y, label in boxes.values():
        ax.add_patch(plt.Rectangle((x, y), width, height, facecolor="#dde8f3", edgecolor="#345", linewidth=1.2))
        ax.text(x + width / 2, y + height / 2, label, ha="center", va="center", fontsize=8)

    def arrow(a: str, b: str, label: str = "", bend: float = 0.0) -> None:
        (xa, ya, _), (xb, yb, _) = boxes[a], boxes[b]
        if ya == yb:  # same row: side to side
            start = (xa + width, ya + height / 2) if xb > xa else (xa, ya + height / 2)
            end = (xb, yb + height / 2) if xb > xa else (xb + width, yb + height / 2)
        else:  # between rows: bottom edge to top edge
            start, end = (xa + width / 2, ya), (xb + width / 2, yb + height)
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "#345",
                                                         "connectionstyle": f"arc3,rad={bend}"})
        if label:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, label, fontsize=7, ha="center",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})

    for a, b in (("upload", "s3in"), ("s3in", "eb"), ("eb", "sfn"), ("sfn", "lambdas"), ("lambdas", "results"),
                 ("kinesis", "firehose"), ("firehose", "raw"), ("raw", "glue"), ("glue", "athena")):
        arrow(a, b)
    arrow("lambdas", "triton", "HTTP / gRPC")
    arrow("sfn", "kinesis", "SendTelemetry", bend=0.15)
    return Image("architecture.png", "RadStream architecture", _png(plt, fig))


def latency_histogram(values: list[float]) -> Image | None:
    if not values:
        return None
    plt, (fig, ax) = _figure(8, 3.5)
    ax.hist(values, bins=min(40, max(5, len(values) // 3)), color="#4a7bb7", edgecolor="white")
    ax.set_xlabel("end-to-end processing time (ms)")
    ax.set_ylabel("studies")
    ax.set_title(f"Processing time of {len(values)} successful studies")
    return Image("latency_histogram.png", "latency histogram", _png(plt, fig))


def stage_bars(rows: list[Mapping[str, Any]]) -> Image | None:
    rows = [r for r in rows if r.get("p50_ms") is not None]
    if not rows:
        return None
    plt, (fig, ax) = _figure(8, 3.5)
    positions = range(len(rows))
    for offset, key, colour in ((-0.27, "p50_ms", "#4a7bb7"), (0, "p95_ms", "#e39c3b"), (0.27, "p99_ms", "#c44e52")):
        ax.bar([p + offset for p in positions], [float(r.get(key) or 0) for r in rows], width=0.27, label=key[:3], color=colour)
    ax.set_xticks(list(positions), [r["stage"] for r in rows])
    ax.set_ylabel("ms")
    ax.set_title("Per-stage latency")
    ax.legend()
    return Image("stage_latency.png", "per-stage latency", _png(plt, fig))


@dataclass(frozen=True)
class LoadWindow:
    """A load run as the throughput chart shades it."""

    number: int  # its row in the section's table of load runs
    run_id: str
    start: datetime
    end: datetime


# Up to this many shaded runs carry their run id; more carry their number in the table under the chart.
_NAMED_WINDOWS = 3


def _bucket_length(bucket: str) -> timedelta:
    return timedelta(minutes=1) if bucket == "minute" else timedelta(hours=1)


def _utc(value: Any) -> datetime | None:
    """An ISO-8601 time ('Z', an offset, or none: read as UTC) → an aware UTC datetime; None if unreadable."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def load_windows_in_range(rows: list[Mapping[str, Any]], windows: Sequence[Mapping[str, Any]],
                          bucket: str = "minute") -> list[LoadWindow]:
    """The load runs (radstream.load_runs records) the throughput chart shades: those overlapping its
    buckets, numbered by their place in `windows` (from 1) and clipped to the buckets, so that a run
    outside them does not stretch the time axis."""
    times = [moment for moment in (_utc(row.get(bucket)) for row in rows) if moment is not None]
    if not times:
        return []
    first, last = min(times), max(times) + _bucket_length(bucket)
    shaded = []
    for number, window in enumerate(windows, 1):
        start, end = _utc(window.get("started_at")), _utc(window.get("finished_at"))
        if start is not None and end is not None and start <= end and start < last and end > first:
            shaded.append(LoadWindow(number, str(window.get("run_id")), max(start, first), min(end, last)))
    return shaded


def throughput_chart(rows: list[Mapping[str, Any]], bucket: str = "minute",
                     windows: Sequence[Mapping[str, Any]] = ()) -> Image | None:
    """Studies per bucket, with each load run of `windows` that falls in the chart's range shaded."""
    if not rows:
        return None
    plt, (fig, ax) = _figure(8, 3.5)
    times = [datetime.fromisoformat(str(r[bucket]).replace("Z", "+00:00")) for r in rows]
    ok = [int(r.get("succeeded") or 0) for r in rows]
    failed = [int(r.get("failed") or 0) for r in rows]
    width = 0.8 * (_bucket_length(bucket) / timedelta(days=1))  # bar width in days
    ax.bar(times, ok, width=width, align="edge", color="#4a7bb7", label="succeeded")
    ax.bar(times, failed, width=width, align="edge", bottom=ok, color="#c44e52", label="failed")
    shaded = load_windows_in_range(rows, windows, bucket)
    named = len(shaded) <= _NAMED_WINDOWS
    for index, window in enumerate(shaded):
        ax.axvspan(window.start, window.end, color="#e8a33d", alpha=0.2, zorder=0, gid=f"load-run-{window.number}",
                   label=None if index else "load run")
        # Over the bars, on a pale ground, so that a label stays readable whatever it crosses.
        ax.text(window.start, 0.97, window.run_id if named else f"#{window.number}", transform=ax.get_xaxis_transform(),
                rotation=90 if named else 0, ha="left", va="top", fontsize=7, color="#5c3d0b",
                zorder=5, bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1})
    ax.set_ylabel(f"studies per {bucket}")
    ax.set_title("Throughput over time (UTC)")
    # Beside the axes: inside, it would hide the bars or a load run's label.
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.autofmt_xdate()
    return Image("throughput.png", "throughput over time", _png(plt, fig))


# -- sections -------------------------------------------------------------------------------------
def _phase_section(state: Mapping[str, Any] | None) -> Section:
    section = Section("Phases")
    phases = (state or {}).get("phases") or {}
    if not phases:
        return section.note("No phase has run yet.")
    rows, steps = [], []
    for number in sorted(phases, key=int):
        phase = phases[number]
        rows.append([number, phase.get("name"), phase.get("status"), phase.get("seconds"),
                     phase.get("started_at"), phase.get("finished_at")])
        for name, step in (phase.get("steps") or {}).items():
            steps.append([number, name, step.get("status"), step.get("seconds"), step.get("mutations")])
    section.table(["phase", "name", "status", "seconds", "started", "finished"], rows)
    if steps:
        section.table(["phase", "step", "status", "seconds", "changes"], steps)
    return section


def _model_section(telemetry: Mapping[str, Any]) -> Section:
    section = Section("Model")
    models = telemetry.get("model_versions") or []
    if not models:
        return section.note("No result in the telemetry yet.")
    # The digest's first 12 hex digits tell versions apart; the full one is in every result.
    section.table(["model", "version", "trained", "trained on", "licence", "model sha256", "studies"],
                  [[r.get("model_name"), r.get("model_version"), _trained(r.get("model_trained")), r.get("model_trained_on"),
                    r.get("model_licence") or "not declared", (r.get("model_sha256") or "")[:12] or None, r.get("studies")]
                   for r in models])
    untrained = sum(int(r.get("studies") or 0) for r in models if r.get("model_trained") is not True)
    if untrained:
        section.text(f"{untrained} of these results came from a model not declared trained: "
                     "its findings and probabilities mean nothing clinically.")
    return section


def _trained(value: Any) -> str:
    return {True: "yes", False: "NO (untrained)"}.get(value, "unknown")


def _latency_section(telemetry: Mapping[str, Any]) -> Section:
    section = Section("Latency")
    summary = (telemetry.get("latency_percentiles") or [{}])[0]
    if summary.get("studies"):
        section.table(["studies", "p50 ms", "p95 ms", "p99 ms"],
                      [[summary["studies"], summary.get("p50_ms"), summary.get("p95_ms"), summary.get("p99_ms")]])
    times = [float(r["processing_time_ms"]) for r in telemetry.get("processing_times") or [] if r.get("processing_time_ms") is not None]
    section.image(latency_histogram(times))
    stages = telemetry.get("stage_latency_percentiles") or []
    if stages:
        section.table(["stage", "events", "avg ms", "p50 ms", "p95 ms", "p99 ms"],
                      [[r["stage"], r.get("events"), r.get("avg_ms"), r.get("p50_ms"), r.get("p95_ms"), r.get("p99_ms")] for r in stages])
    section.image(stage_bars(stages))
    if not times and not stages:
        section.note("No successful study in the telemetry yet.")
    return section


def _throughput_section(telemetry: Mapping[str, Any], load_runs: Sequence[Mapping[str, Any]]) -> Section:
    section = Section("Throughput")
    rate = (telemetry.get("success_rate") or [{}])[0]
    if rate.get("events"):
        section.text(f"{rate['events']} events: {rate.get('succeeded')} succeeded, {rate.get('failed')} failed "
                     f"({_cell(rate.get('success_rate_percent'))} % success).")
    rows = telemetry.get("throughput_per_minute") or []
    # One order for the table and the chart: a shaded run's number is its row.
    runs = sorted(load_runs, key=lambda run: str(run.get("started_at") or ""))
    chart = throughput_chart(rows, windows=runs)
    section.image(chart)
    if chart is None:
        section.note("No telemetry events yet.")
    if not runs:
        return section
    section.table(["#", "load run", "start (UTC)", "end (UTC)", "studies"],
                  [[number, run.get("run_id"), run.get("started_at"), run.get("finished_at"), run.get("studies")]
                   for number, run in enumerate(runs, 1)])
    unshaded = len(runs) - len(load_windows_in_range(rows, runs))
    if chart is not None and unshaded:
        section.note(f"{unshaded} of these load runs fall outside the telemetry's time range: not shaded on the chart.")
    return section


def _failures_section(telemetry: Mapping[str, Any]) -> Section:
    section = Section("Failures")
    reasons = telemetry.get("failure_reasons") or []
    if not reasons:
        return section.text("No failed study.")
    return section.table(["stage", "error type", "failures", "example message"],
                         [[r.get("error_stage"), r.get("error_type"), r.get("failures"), r.get("example_message")] for r in reasons])


def _cost_section(cost: Mapping[str, Any]) -> Section:
    section = Section("Cost")
    idle = cost.get("idle")
    if idle:
        section.text(f"Idle cost of what is deployed: ${idle['per_hour']:.4f} per hour, ${idle['per_month']:.2f} per month "
                     f"(built-in us-east-1 prices as of {idle['prices_as_of']}).")
        section.table(["item", "quantity", "unit", "unit price $", "$ / hour", "$ / month"],
                      [[li["item"], li["quantity"], li["unit"], li["unit_price"], li["per_hour"], li["per_month"]] for li in idle["lines"]])
    per_image = cost.get("per_1000_images")
    if per_image:
        section.text(f"Marginal cost per 1000 images: ${per_image['per_1000_images']:.4f}.")
        section.table(["item", "quantity", "unit", "unit price $", "cost $"],
                      [[li["item"], li["quantity"], li["unit"], li["unit_price"], li["cost"]] for li in per_image["lines"]])
    explorer = cost.get("cost_explorer")
    if explorer:
        section.text(f"Cost Explorer, {explorer['start']} to {explorer['end']}: {explorer['total']:.2f} {explorer['currency']}.")
        section.table(["service", "cost"], [[k, v] for k, v in explorer["by_service"].items()])
    for note in [*(idle or {}).get("notes", []), *(per_image or {}).get("notes", []), *cost.get("notes", [])]:
        section.note(note)
    return section


def _teardown_section(leftovers: list[Mapping[str, Any]] | None, deployment: str) -> Section:
    section = Section("Teardown proof")
    if leftovers is None:
        return section.note("The tagged-resource inventory was not taken.")
    if not leftovers:
        return section.text(f"No resource carries the tag radstream:deployment={deployment}: nothing of this deployment is left.")
    section.text(f"{len(leftovers)} resource(s) still carry the tag radstream:deployment={deployment}:")
    return section.table(["service", "ARN"], [[r.get("service"), r.get("arn")] for r in leftovers])


def build(data: Mapping[str, Any]) -> tuple[str, list[Section]]:
    """The report's title and sections from plain inputs:
    {"deployment", "target", "generated_at", "state": state.json document, "telemetry": {query name: rows},
     "cost": {"idle", "per_1000_images", "cost_explorer", "notes"}, "leftovers": [{"service", "arn"}] | None,
     "load_runs": [{"run_id", "started_at", "finished_at", "studies", "target"}] (radstream.load_runs),
     "errors": {section title: why it could not be gathered}}."""
    deployment = data.get("deployment", "?")
    title = f"RadStream report — {deployment} ({data.get('target', '?')})"
    telemetry = data.get("telemetry") or {}
    overview = Section("Architecture").text(
        f"Generated {data.get('generated_at') or datetime.now(timezone.utc).isoformat(timespec='seconds')}."
    ).pre(ARCHITECTURE).image(architecture_chart())
    sections = [overview, _phase_section(data.get("state")), _model_section(telemetry), _latency_section(telemetry),
                _throughput_section(telemetry, data.get("load_runs") or []),
                _failures_section(telemetry), _cost_section(data.get("cost") or {}),
                _teardown_section(data.get("leftovers"), deployment)]
    for section in sections:
        if section.title in (data.get("errors") or {}):
            section.note(f"Could not be gathered: {data['errors'][section.title]}")
    return title, sections


def write(data: Mapping[str, Any], out_dir: Path) -> dict[str, Any]:
    """report.md (+ its PNGs) and the self-contained report.html in out_dir."""
    title, sections = build(data)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = [value for s in sections for kind, value in s.blocks if kind == "image"]
    for image in images:
        (out_dir / image.name).write_bytes(image.png)
    (out_dir / "report.md").write_text(to_markdown(title, sections))
    (out_dir / "report.html").write_text(to_html(title, sections))
    return {"markdown": str(out_dir / "report.md"), "html": str(out_dir / "report.html"),
            "images": [str(out_dir / i.name) for i in images], "sections": [s.title for s in sections]}


# -- from a live deployment -----------------------------------------------------------------------
REPORT_QUERIES = ("model_versions", "latency_percentiles", "processing_times", "stage_latency_percentiles", "success_rate",
                  "throughput_per_minute", "failure_reasons")


def gather(ctx: Any) -> dict[str, Any]:
    """Everything `build` needs, from a live context."""
    from radstream import load_runs
    from radstream.analytics.cost import deployment_cost
    from radstream.analytics.runner import run_query
    from radstream.aws.inventory import deployment_resources

    errors: dict[str, str] = {}

    def attempt(section: str, fetch: Callable[[], Any]) -> Any:
        try:
            return fetch()
        except Exception as exc:  # noqa: BLE001 - one missing section must not lose the others
            errors[section] = str(exc).splitlines()[0]
            return None

    telemetry = attempt("Latency", lambda: {n: run_query(ctx, name=n).rows for n in REPORT_QUERIES}) or {}
    if "Latency" in errors:
        errors["Model"] = errors["Throughput"] = errors["Failures"] = errors["Latency"]
    return {
        "deployment": ctx.config.deployment,
        "target": ctx.config.target,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "state": ctx.state.data,
        "telemetry": telemetry,
        "cost": attempt("Cost", lambda: deployment_cost(ctx)) or {},
        "leftovers": attempt("Teardown proof", lambda: deployment_resources(ctx.client, ctx.config.deployment)),
        "load_runs": attempt("Throughput", lambda: load_runs.read(ctx.load_runs_file)) or [],
        "errors": errors,
    }
