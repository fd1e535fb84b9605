"""Lambda's REPORT log lines parsed, and `bench cold-start`'s figures from them."""

from __future__ import annotations

import pytest

from radstream.aws.lambda_logs import parse_report
from radstream.bench.cold_start import report_figures

REQUEST = "REPORT RequestId: 8f5a2c1e-3b7d-4e2a-9c1f-0d6b7e8a9f10"


def test_a_cold_report_line_has_its_duration_and_init_duration():
    line = (f"{REQUEST}\tDuration: 102.25 ms\tBilled Duration: 103 ms\tMemory Size: 1024 MB\t"
            "Max Memory Used: 88 MB\tInit Duration: 512.30 ms\t\n")
    assert parse_report(line) == {"duration_ms": pytest.approx(102.25), "init_ms": pytest.approx(512.30)}


def test_a_warm_report_line_has_only_its_duration():
    line = f"{REQUEST}\tDuration: 3.07 ms\tBilled Duration: 4 ms\tMemory Size: 1024 MB\tMax Memory Used: 90 MB\t\n"
    assert parse_report(line) == {"duration_ms": pytest.approx(3.07)}


@pytest.mark.parametrize("line", [
    f"{REQUEST}\tDuration: 12.34 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB",
    f"{REQUEST}\tBilled Duration: 13 ms\tDuration: 12.34 ms\tMemory Size: 128 MB",
])
def test_billed_duration_is_never_taken_for_the_duration(line):
    assert parse_report(line) == {"duration_ms": pytest.approx(12.34)}


@pytest.mark.parametrize("line", [
    "START RequestId: 8f5a2c1e-3b7d-4e2a-9c1f-0d6b7e8a9f10 Version: $LATEST",
    "END RequestId: 8f5a2c1e-3b7d-4e2a-9c1f-0d6b7e8a9f10",
    "INIT_START Runtime Version: python:3.12.v38",
    "prepared tensor in Duration: 12.00 ms",
    f"{REQUEST}\tBilled Duration: 13 ms",
])
def test_other_lines_are_not_reports(line):
    assert parse_report(line) is None


def test_report_figures_split_cold_starts_from_warm_invocations():
    reports = [
        {"duration_ms": 300.0, "init_ms": 500.0},
        {"duration_ms": 20.0},
        {"duration_ms": 100.0, "init_ms": 700.0},
        {"duration_ms": 40.0},
        {"duration_ms": 30.0},
    ]
    assert report_figures(reports) == {"invocations": 5, "cold_starts": 2, "init_ms_p50": 600.0,
                                       "first_invoke_ms_p50": 200.0, "warm_invoke_ms_p50": 30.0}


def test_report_figures_of_parsed_lines():
    lines = [f"{REQUEST}\tDuration: 250.00 ms\tBilled Duration: 250 ms\tInit Duration: 812.44 ms",
             "END RequestId: x", f"{REQUEST}\tDuration: 4.50 ms\tBilled Duration: 5 ms"]
    reports = [r for r in map(parse_report, lines) if r is not None]
    figures = report_figures(reports)
    assert figures["invocations"] == 2 and figures["cold_starts"] == 1
    assert figures["init_ms_p50"] == 812.4
    assert figures["first_invoke_ms_p50"] == 250.0 and figures["warm_invoke_ms_p50"] == 4.5


def test_report_figures_without_reports():
    assert report_figures([]) == {"invocations": 0, "cold_starts": 0, "init_ms_p50": None,
                                  "first_invoke_ms_p50": None, "warm_invoke_ms_p50": None}
