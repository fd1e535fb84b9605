"""Bad input through the deployed sandbox pipeline (after `up`): the whole corpus of bad uploads
(tests/prove/corpus.py) mixed into 200 studies, 10% of them bad. Every bad one is quarantined with
a reason naming its upload, every good one has a result, none is lost."""

from __future__ import annotations

import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from radstream.pipeline.results import input_ref
from tests.prove.corpus import Study, bad_studies, good_studies
from tests.prove.support import aws

pytestmark = pytest.mark.slow

STUDIES = 200
BAD_SHARE = 0.10
LANDING_TIMEOUT_S = 600


def listing(s3, bucket: str, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def has_result(results: set[str], study: Study) -> bool:
    # Outcomes are filed under the study's id and a hash of its key (results/<id>/<key hash>-<version hash>.json);
    # a DICOM's id is derived from its Study Instance UID, so the key's hash is what finds it.
    return any(f"/{input_ref(study.trigger, None)}-" in key for key in results)


def upload(s3, bucket: str, studies: list[Study]) -> None:
    def one(study: Study) -> None:
        for key, body in study.objects:  # sidecar first, then the image that starts the pipeline
            s3.put_object(Bucket=bucket, Key=key, Body=body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, studies))


def test_corpus_in_200_studies_every_bad_one_quarantined_every_good_one_served(reference):
    s3 = aws(reference.project, "s3")
    state = json.loads((reference.state_dir / "state.json").read_text())
    buckets = state["phases"]["0"]["outputs"]["buckets"]

    corpus = bad_studies()
    assert len(corpus) >= 25
    first_batch = corpus[: int(STUDIES * BAD_SHARE)]
    rest = corpus[len(first_batch):]
    good = good_studies(STUDIES - len(first_batch))
    mixed = [*good, *first_batch]
    mixed.sort(key=lambda s: zlib.crc32(s.name.encode()))  # bad ones interleaved with good ones
    upload(s3, buckets["images"], mixed + rest)

    bad_triggers = {s.trigger: s.name for s in corpus}
    reasons: dict[str, dict] = {}

    def landed() -> bool:
        results = listing(s3, buckets["results"], "results/")
        for key in listing(s3, buckets["results"], "failed/"):
            if key.endswith("/reason.json") and key not in reasons:
                reasons[key] = json.loads(s3.get_object(Bucket=buckets["results"], Key=key)["Body"].read())
        served = {s.name for s in good if has_result(results, s)}
        quarantined = {r["input_key"] for r in reasons.values()}
        wrongly = [r for r in reasons.values() if r["input_key"] not in bad_triggers]
        assert not wrongly, f"good studies quarantined: {wrongly}"  # fail now, with the reason
        return len(served) == len(good) and set(bad_triggers) <= quarantined

    deadline = time.monotonic() + LANDING_TIMEOUT_S
    while not landed():
        assert time.monotonic() < deadline, "studies still unaccounted for"
        time.sleep(1)

    by_input = {r["input_key"]: r for r in reasons.values()}
    results = listing(s3, buckets["results"], "results/")
    lost = [s.name for s in good if not has_result(results, s)]
    lost += [name for key, name in bad_triggers.items() if key not in by_input]
    wrongly_failed = [s.name for s in good if s.trigger in by_input]
    print(f"\npipeline corpus: {len(corpus)} bad inputs tried, {len(mixed)} studies "
          f"({len(first_batch)} bad) plus {len(rest)} more bad; lost {len(lost)}")
    for key, name in sorted(bad_triggers.items(), key=lambda kv: kv[1]):
        print(f"  {name:<28} {by_input[key]['stage']}/{by_input[key]['error_type']}")
    assert lost == [] and wrongly_failed == []
    for key in bad_triggers:
        reason = by_input[key]
        assert reason["status"] == "FAILED" and reason["error_type"] and reason["message"]
        assert f"failed/{reason['study_id']}/{reason['input_ref']}/reason.json" in reasons
