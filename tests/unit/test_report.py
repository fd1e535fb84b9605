"""The evidence report: both files written, HTML self-contained, every section and chart present."""

from __future__ import annotations

import base64
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from radstream.analytics import report
from radstream.analytics.cost import ImageWorkload, cost_per_1000_images, idle_cost

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(leftovers=None) -> dict:
    state = {"phases": {
        "0": {"name": "foundation", "status": "done", "seconds": 12.5, "started_at": "2025-03-01T10:00:00+00:00",
              "finished_at": "2025-03-01T10:00:12+00:00", "steps": {"buckets": {"status": "done", "seconds": 1.2, "mutations": 8}}},
        "1": {"name": "nodegroup", "status": "failed", "seconds": 3.0, "steps": {}},
    }}
    telemetry = {
        "latency_percentiles": [{"studies": 3, "p50_ms": 200.0, "p95_ms": 290.0, "p99_ms": 298.0}],
        "processing_times": [{"study_id": f"S{i}", "processing_time_ms": 100.0 * i} for i in range(1, 4)],
        "stage_latency_percentiles": [{"stage": "validate", "events": 3, "avg_ms": 5.0, "p50_ms": 5.0, "p95_ms": 6.0, "p99_ms": 7.0},
                                      {"stage": "inference", "events": 3, "avg_ms": 90.0, "p50_ms": 80.0, "p95_ms": 150.0, "p99_ms": 160.0}],
        "success_rate": [{"events": 4, "succeeded": 3, "failed": 1, "success_rate_percent": 75.0}],
        "throughput_per_minute": [{"minute": "2025-03-01T10:00:00Z", "events": 2, "succeeded": 2, "failed": 0},
                                  {"minute": "2025-03-01T10:01:00Z", "events": 2, "succeeded": 1, "failed": 1}],
        "model_versions": [{"model_name": "radstream_cxr", "model_version": "1", "model_trained": False,
                            "model_trained_on": None, "model_licence": "Apache-2.0", "model_sha256": "a1b2c3" * 10 + "d4e5",
                            "studies": 2},
                           {"model_name": "radstream_cxr", "model_version": "2", "model_trained": True,
                            "model_trained_on": "NIH ChestX-ray14", "model_licence": None, "studies": 1}],
        "failure_reasons": [{"error_stage": "validate", "error_type": "InvalidMetadata", "failures": 1,
                             "example_message": "view <script>alert(1)</script> | missing"}],
    }
    cost = {"idle": idle_cost({"clusters": 1, "kinesis_shards": 1}),
            "per_1000_images": cost_per_1000_images(ImageWorkload(lambda_ms={"validate": 5.0})), "notes": []}
    return {"deployment": "rs-test", "target": "sandbox", "generated_at": "2025-03-01T12:00:00+00:00", "state": state,
            "telemetry": telemetry, "cost": cost, "leftovers": leftovers}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("report")
    return report.write(_data(leftovers=[]), out), out


def test_both_files_and_the_charts_are_written(written):
    result, out = written
    assert Path(result["markdown"]) == out / "report.md" and Path(result["html"]) == out / "report.html"
    names = {Path(p).name for p in result["images"]}
    assert names == {"architecture.png", "latency_histogram.png", "stage_latency.png", "throughput.png"}
    for name in names:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)


def test_the_html_is_self_contained_with_embedded_images(written):
    _, out = written
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)  # nothing fetched from elsewhere
    assert "<link" not in page and "<script" not in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(i).startswith(PNG_MAGIC) for i in images)


def test_the_sections_and_their_facts(written):
    result, out = written
    assert result["sections"] == ["Architecture", "Phases", "Model", "Latency", "Throughput", "Failures", "Cost",
                                  "Teardown proof"]
    for text in ((out / "report.md").read_text(), (out / "report.html").read_text()):
        for section in result["sections"]:
            assert section in text
        assert "foundation" in text and "12.50" in text and "InvalidMetadata" in text
        assert "75.00 % success" in text
        assert "EKS control plane" in text and "per 1000 images" in text
        assert "nothing of this deployment is left" in text


def test_markdown_links_its_pngs_and_escapes_tables(written):
    _, out = written
    markdown = (out / "report.md").read_text()
    assert "![RadStream architecture](architecture.png)" in markdown
    assert "\\| missing" in markdown  # a pipe inside a cell does not break the table


def test_html_escapes_what_came_from_telemetry(written):
    _, out = written
    page = (out / "report.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_leftovers_and_missing_sections_are_reported(tmp_path: Path):
    data = _data(leftovers=[{"service": "s3", "arn": "arn:aws:s3:::rs-test-images-1"}]) | {
        "telemetry": {}, "errors": {"Latency": "the sandbox is not running"}}
    result = report.write(data, tmp_path)
    markdown = Path(result["markdown"]).read_text()
    assert "1 resource(s) still carry the tag" in markdown and "arn:aws:s3:::rs-test-images-1" in markdown
    assert "Could not be gathered: the sandbox is not running" in markdown
    assert "No successful study" in markdown and "No failed study" in markdown
    assert {Path(p).name for p in result["images"]} == {"architecture.png"}


def test_no_inventory_says_so(tmp_path: Path):
    markdown = Path(report.write(_data(leftovers=None), tmp_path)["markdown"]).read_text()
    assert "inventory was not taken" in markdown


def test_the_model_section_says_which_results_came_from_an_untrained_model(written):
    _, out = written
    markdown = (out / "report.md").read_text()
    assert "| radstream_cxr | 1 | NO (untrained) | — | Apache-2.0 | a1b2c3a1b2c3 | 2 |" in markdown
    # Telemetry from before results carried a digest: none shown, none made up.
    assert "| radstream_cxr | 2 | yes | NIH ChestX-ray14 | not declared | — | 1 |" in markdown
    assert "2 of these results came from a model not declared trained" in markdown


def test_a_report_of_a_trained_model_only_makes_no_untrained_claim():
    data = _data()
    data["telemetry"]["model_versions"] = [{"model_name": "m", "model_version": "3", "model_trained": True,
                                            "model_trained_on": "NIH ChestX-ray14", "model_licence": "CC-BY-4.0",
                                            "model_sha256": "0f" * 32, "studies": 5}]
    markdown = report.to_markdown(*report.build(data))
    assert "| m | 3 | yes | NIH ChestX-ray14 | CC-BY-4.0 | 0f0f0f0f0f0f | 5 |" in markdown
    assert "untrained" not in markdown.lower()


# -- load runs on the throughput chart ------------------------------------------------------------
# The telemetry of _data() spans 10:00 to 10:02; the third run is a day before it.
LOAD_RUNS = [
    {"run_id": "20250301T100130-bbbb", "started_at": "2025-03-01T10:01:30Z", "finished_at": "2025-03-01T10:05:00Z",
     "studies": 10, "target": "sandbox"},
    {"run_id": "20250301T100010-aaaa", "started_at": "2025-03-01T10:00:10Z", "finished_at": "2025-03-01T10:00:50Z",
     "studies": 20, "target": "sandbox"},
    {"run_id": "20250228T090000-cccc", "started_at": "2025-02-28T09:00:00Z", "finished_at": "2025-02-28T09:10:00Z",
     "studies": 30, "target": "sandbox"},
]


def test_load_windows_in_range_keeps_the_runs_overlapping_the_buckets_clipped_to_them():
    rows = _data()["telemetry"]["throughput_per_minute"]
    windows = report.load_windows_in_range(rows, LOAD_RUNS)
    utc = timezone.utc
    assert windows == [
        report.LoadWindow(1, "20250301T100130-bbbb", datetime(2025, 3, 1, 10, 1, 30, tzinfo=utc),
                          datetime(2025, 3, 1, 10, 2, tzinfo=utc)),  # the last bucket ends at 10:02
        report.LoadWindow(2, "20250301T100010-aaaa", datetime(2025, 3, 1, 10, 0, 10, tzinfo=utc),
                          datetime(2025, 3, 1, 10, 0, 50, tzinfo=utc)),
    ]
    assert report.load_windows_in_range([], LOAD_RUNS) == []
    unreadable = {"run_id": "x", "started_at": None, "finished_at": "2025-03-01T10:01:00Z"}
    assert report.load_windows_in_range(rows, [unreadable]) == []


def test_the_throughput_section_shades_and_lists_the_load_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    figures: list = []
    png = report._png
    monkeypatch.setattr(report, "_png", lambda plt, fig: figures.append(fig) or png(plt, fig))
    result = report.write(_data() | {"load_runs": LOAD_RUNS}, tmp_path)

    assert (tmp_path / "throughput.png").read_bytes().startswith(PNG_MAGIC)
    chart = next(fig for fig in figures if fig.axes[0].get_title() == "Throughput over time (UTC)")
    spans = sorted(a.get_gid() for a in chart.axes[0].patches if (a.get_gid() or "").startswith("load-run-"))
    assert spans == ["load-run-2", "load-run-3"]  # numbered as the table lists them, by start; #1 is outside the chart
    assert {t.get_text() for t in chart.axes[0].texts} == {"20250301T100010-aaaa", "20250301T100130-bbbb"}

    markdown = Path(result["markdown"]).read_text()
    assert "| # | load run | start (UTC) | end (UTC) | studies |" in markdown
    table = markdown[markdown.index("| # | load run"):]
    assert table.index("20250228T090000-cccc") < table.index("20250301T100010-aaaa") < table.index("20250301T100130-bbbb")
    assert "| 2 | 20250301T100010-aaaa | 2025-03-01T10:00:10Z | 2025-03-01T10:00:50Z | 20 |" in markdown
    assert "1 of these load runs fall outside the telemetry's time range" in markdown
    assert "20250228T090000-cccc" in Path(result["html"]).read_text()
