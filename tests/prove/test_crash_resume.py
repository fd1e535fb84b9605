"""Crash-resume, with real processes: `up`, then `teardown`, each SIGKILLed right after one mutating
call, rerun and killed after the next one, and so on until a run completes. Then: converged, no
duplicate (everything tagged compared with a clean deployment), a valid state file, nothing left.

RADSTREAM_PROVE_CRASH_EACH=point kills after every mutation point (77 for `up`, 55 for `teardown`
when this was written, about 5 minutes); the default, `call`, after the first of each distinct call
of each step (the fourth bucket's PutBucketPolicy fails like the first's), which keeps the suite
short. RADSTREAM_PROVE_CRASH_PHASES=0,1 limits the kill points of `up` to those phases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from radstream.state import read_state_file
from tests.prove.support import (
    Chain,
    aws,
    crash_chain,
    kube_objects,
    new_project,
    owned,
    recorded,
    resource_types,
    run,
    stop_sandbox,
)

pytestmark = pytest.mark.slow

DEPLOYMENT = "rs-crash"
EACH = os.environ.get("RADSTREAM_PROVE_CRASH_EACH", "call")
PHASES = os.environ.get("RADSTREAM_PROVE_CRASH_PHASES")
UP = ("up", "--yes", "--json")
TEARDOWN = ("teardown", "--yes", "--json")


def report(what: str, chain: Chain) -> None:
    print(f"\n{what}: {len(chain.kills)} mutation points killed, {len(chain.kills)} survived "
          f"(mode {EACH}), {chain.seconds:.0f} s")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    path = new_project(tmp_path_factory.mktemp("crash"), DEPLOYMENT)
    yield path
    stop_sandbox(path)


@pytest.fixture(scope="module")
def up_chain(project: Path, reference) -> Chain:
    harness_args = ["--each", EACH] if EACH != "point" else []
    chain = crash_chain(project, UP, project / "up.kills.jsonl", reference=reference.ledger,
                        phases=PHASES, extra=harness_args)
    report("up", chain)
    return chain


def test_up_killed_after_each_mutation_converges_without_duplicates(project: Path, reference, up_chain: Chain):
    final = up_chain.final
    assert final.code == 0 and final.json["ok"], final.stderr[-3000:]
    planned = {(p["phase"], p["step"], p["call"]) for p in recorded(reference.ledger)}
    killed = {(p["phase"], p["step"], p["call"]) for p in up_chain.kills}
    if PHASES is None:
        assert killed == planned, "some kind of mutating call was never the one a run died after"
    assert len(up_chain.kills) >= len(planned)

    again = run(project, *UP)
    assert again.code == 0 and again.json["mutations"] == 0, again.stdout

    ours, clean = owned(project, DEPLOYMENT), owned(reference.project, reference.deployment)
    assert resource_types(ours) == resource_types(clean)
    assert ours == clean, "a crash left a duplicate (or lost a resource)"
    assert kube_objects(project) == kube_objects(reference.project)

    state = read_state_file(project / ".radstream" / "state.json")
    assert {n: state["phases"][str(n)]["status"] for n in range(6)} == {n: "done" for n in range(6)}
    assert not (project / ".radstream" / "lock.json").exists()


FOREIGN = {"bucket": "someone-elses-bucket", "role": f"{DEPLOYMENT}-not-ours", "stream": f"{DEPLOYMENT}-not-ours"}


def plant_foreign_resources(project: Path) -> None:
    """Things teardown must not touch: one unrelated, and some named like ours but not tagged ours
    (or tagged as another deployment's)."""
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    aws(project, "s3").create_bucket(Bucket=FOREIGN["bucket"])
    aws(project, "s3").put_bucket_tagging(Bucket=FOREIGN["bucket"], Tagging={"TagSet": [
        {"Key": "radstream:deployment", "Value": "another-deployment"}]})
    aws(project, "iam").create_role(RoleName=FOREIGN["role"], AssumeRolePolicyDocument=trust)
    aws(project, "kinesis").create_stream(StreamName=FOREIGN["stream"], ShardCount=1)


def foreign_resources_left(project: Path) -> dict[str, bool]:
    buckets = {b["Name"] for b in aws(project, "s3").list_buckets()["Buckets"]}
    roles = {r["RoleName"] for r in aws(project, "iam").list_roles()["Roles"]}
    streams = set(aws(project, "kinesis").list_streams()["StreamNames"])
    return {"bucket": FOREIGN["bucket"] in buckets, "role": FOREIGN["role"] in roles,
            "stream": FOREIGN["stream"] in streams}


def test_teardown_killed_after_each_mutation_completes_and_touches_only_its_own(project: Path, up_chain: Chain):
    plant_foreign_resources(project)
    harness_args = ["--each", EACH] if EACH != "point" else []
    chain = crash_chain(project, TEARDOWN, project / "teardown.kills.jsonl", extra=harness_args)
    report("teardown", chain)
    final = chain.final
    assert final.code == 0 and final.json["ok"], final.stdout[-3000:]
    assert final.json["leftovers"] == []
    assert len(chain.kills) >= 20  # every kind of delete of phases 4…0
    assert owned(project, DEPLOYMENT) == []
    assert foreign_resources_left(project) == {"bucket": True, "role": True, "stream": True}
    state = read_state_file(project / ".radstream" / "state.json")
    assert {p["status"] for p in state["phases"].values()} <= {"destroyed", "pending"}
