"""The prove suite's shared deployment: one clean `up` (phases 0–5) on its own sandbox, recorded
mutation by mutation by the crash harness (never killed). The crash test compares its crash-killed
deployment with this one; the corpus, secret and loopback tests run against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.prove.support import Run, new_project, run, stop_sandbox

REFERENCE = "rs-ref"


@dataclass
class Deployed:
    project: Path
    deployment: str
    ledger: Path  # every mutation point of the clean `up`
    up: Run

    @property
    def state_dir(self) -> Path:
        return self.project / ".radstream"


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    project = new_project(tmp_path_factory.mktemp("reference"), REFERENCE)
    ledger = project / "up.mutations.jsonl"
    try:
        result = run(project, "up", "--yes", "--json",
                     harness=["tests.support.crash_harness", "--ledger", str(ledger), "--record"])
        assert result.code == 0 and result.json["ok"], result.stderr[-3000:]
        yield Deployed(project, REFERENCE, ledger, result)
    finally:
        stop_sandbox(project)
