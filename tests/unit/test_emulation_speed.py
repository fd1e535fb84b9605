"""The sandbox's shortcuts around moto's repeated work return what moto's own functions return."""

from __future__ import annotations

from radstream.sandbox.emulation_speed import memoised, shared_task_clients


def test_task_clients_are_made_once_per_region_service_and_credentials():
    made = []

    def create(region, service, state_credentials=None):
        made.append((region, service, state_credentials))
        return object()

    boto_client_for = shared_task_clients(create)
    first = boto_client_for(region="us-east-1", service="lambda")
    assert boto_client_for(region="us-east-1", service="lambda") is first
    assert boto_client_for(region="eu-west-1", service="lambda") is not first
    assert boto_client_for(region="us-east-1", service="lambda", state_credentials="role-a") is not first
    assert made == [("us-east-1", "lambda", None), ("eu-west-1", "lambda", None), ("us-east-1", "lambda", "role-a")]


def test_a_memoised_json_path_finds_what_a_fresh_parse_finds():
    from jsonpath_ng.ext import parse

    cached = memoised(parse)
    data = {"detail": {"object": {"key": "incoming/A.png"}}, "items": [{"n": 1}, {"n": 2}]}
    for path in ("$.detail.object.key", "$.items[*].n", "$.detail.object.key"):
        assert [m.value for m in cached(path).find(data)] == [m.value for m in parse(path).find(data)]
    assert cached("$.items[*].n") is cached("$.items[*].n")
