"""Injected faults: `up` from nothing while a seeded 10% of AWS calls are throttled, fail with 500/503
or time out, and a quarter of the Kubernetes API requests answer 409 or 500. It must converge, build
exactly what a clean `up` builds, and report every retry it needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.prove.support import new_project, owned, resource_types, run, stop_sandbox

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-fault"
SEED, AWS_RATE, KUBE_RATE = 20261125, 0.10, 0.25


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = new_project(tmp_path_factory.mktemp("faults"), DEPLOYMENT)
    yield path
    stop_sandbox(path)


def test_up_converges_through_injected_faults_and_reports_its_retries(project: Path, reference):
    report = project / "faults.json"
    harness = ["tests.support.fault_harness", "--report", str(report), "--seed", str(SEED),
               "--rate", str(AWS_RATE), "--kube-rate", str(KUBE_RATE)]
    result = run(project, "up", "--yes", "--json", harness=harness)
    faults = json.loads(report.read_text())
    aws_faults, kube_faults = sum(faults["aws"].values()), sum(faults["kube"].values())
    print(f"\nfaults injected: {faults} — survived: {result.code == 0}")
    assert result.code == 0 and result.json["ok"], result.stderr[-3000:]
    assert aws_faults >= 10 and kube_faults >= 2, f"too few faults to prove anything: {faults}"

    # Every injected fault was retried, and the run says so, call by call.
    retries = result.json["retries"]
    aws_retries = sum(n for call, n in retries["calls"].items() if not call.startswith("k8s:"))
    kube_retries = sum(n for call, n in retries["calls"].items() if call.startswith("k8s:"))
    assert (aws_retries, kube_retries) == (aws_faults, kube_faults), retries
    assert retries["total"] == aws_faults + kube_faults

    # Converged: nothing left to do, and exactly what a clean `up` built.
    again = run(project, "up", "--yes", "--json")
    assert again.code == 0 and again.json["mutations"] == 0 and again.json["retries"]["total"] == 0
    ours = owned(project, DEPLOYMENT)
    assert resource_types(ours) == resource_types(owned(reference.project, reference.deployment))
    assert ours == owned(reference.project, reference.deployment)
