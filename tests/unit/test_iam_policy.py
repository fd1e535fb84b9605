"""IAM's evaluation logic as the sandbox applies it to Lambda sessions (radstream.sandbox.iam_policy),
and the rendered Lambda policy (manifests/iam/lambda.json) judged by it: exactly the calls the
handlers make are allowed, the neighbouring ones are not."""

from __future__ import annotations

import pytest

from radstream.sandbox.iam_policy import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY, decide

BUCKET = "arn:aws:s3:::b"
LIST_INCOMING = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
                 "Condition": {"StringLike": {"s3:prefix": ["incoming/*"]}}}


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_explicit_deny_wins_over_any_allow():
    policies = [doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"}),
                doc({"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"{BUCKET}/secret/*"})]
    assert decide(policies, "s3:GetObject", f"{BUCKET}/secret/a", {}) == EXPLICIT_DENY
    assert decide(policies, "s3:GetObject", f"{BUCKET}/public/a", {}) == ALLOW


def test_nothing_allows_is_the_implicit_deny():
    assert decide([], "s3:GetObject", f"{BUCKET}/a", {}) == IMPLICIT_DENY
    only_put = doc({"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"{BUCKET}/*"})
    assert decide([only_put], "s3:GetObject", f"{BUCKET}/a", {}) == IMPLICIT_DENY


def test_string_like_on_the_prefix_is_evaluated():
    # moto ignores StringLike, so it would allow listing the whole bucket.
    assert decide([doc(LIST_INCOMING)], "s3:ListBucket", BUCKET, {"s3:prefix": "incoming/A.json"}) == ALLOW
    assert decide([doc(LIST_INCOMING)], "s3:ListBucket", BUCKET, {"s3:prefix": "results/"}) == IMPLICIT_DENY
    assert decide([doc(LIST_INCOMING)], "s3:ListBucket", BUCKET, {}) == IMPLICIT_DENY


def test_an_allow_whose_condition_fails_does_not_deny_what_another_allows():
    # moto answers DENIED for an Allow whose condition fails, vetoing the other statement.
    policy = doc(LIST_INCOMING, {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET})
    assert decide([policy], "s3:ListBucket", BUCKET, {"s3:prefix": "results/"}) == ALLOW


def test_negated_and_if_exists_operators_hold_for_an_absent_key():
    not_like = doc({"Effect": "Deny", "Action": "s3:ListBucket", "Resource": BUCKET,
                    "Condition": {"StringNotLike": {"s3:prefix": "incoming/*"}}})
    assert decide([not_like], "s3:ListBucket", BUCKET, {}) == EXPLICIT_DENY
    assert decide([not_like], "s3:ListBucket", BUCKET, {"s3:prefix": "incoming/x"}) == IMPLICIT_DENY
    if_exists = doc({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET,
                     "Condition": {"StringLikeIfExists": {"s3:prefix": "incoming/*"}}})
    assert decide([if_exists], "s3:ListBucket", BUCKET, {}) == ALLOW
    assert decide([if_exists], "s3:ListBucket", BUCKET, {"s3:prefix": "x"}) == IMPLICIT_DENY


def test_an_operator_it_cannot_judge_keeps_allows_out_and_denies_in():
    condition = {"NumericLessThan": {"s3:max-keys": "10"}}
    allow = doc({"Effect": "Allow", "Action": "s3:ListBucket", "Resource": BUCKET, "Condition": condition})
    deny = doc({"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
               {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": BUCKET, "Condition": condition})
    assert decide([allow], "s3:ListBucket", BUCKET, {"s3:max-keys": "5"}) == IMPLICIT_DENY
    assert decide([deny], "s3:ListBucket", BUCKET, {"s3:max-keys": "50"}) == EXPLICIT_DENY


def test_actions_ignore_case_resources_do_not_and_not_elements_invert():
    policy = doc({"Effect": "Allow", "Action": "S3:get*", "Resource": f"{BUCKET}/in/?.png"},
                 {"Effect": "Allow", "NotAction": "s3:*", "NotResource": f"{BUCKET}/*"})
    assert decide([policy], "s3:GetObject", f"{BUCKET}/in/a.png", {}) == ALLOW
    assert decide([policy], "s3:GetObject", f"{BUCKET}/IN/a.png", {}) == IMPLICIT_DENY
    assert decide([policy], "s3:GetObject", f"{BUCKET}/in/ab.png", {}) == IMPLICIT_DENY
    assert decide([policy], "kinesis:PutRecord", "arn:aws:kinesis:us-east-1:1:stream/s", {}) == ALLOW
    assert decide([policy], "kinesis:PutRecord", f"{BUCKET}/x", {}) == IMPLICIT_DENY


# --- the rendered Lambda policy -------------------------------------------------------------------
@pytest.fixture(scope="module")
def lambda_policy():
    from radstream.aws.iam import role_documents
    from radstream.documents import template_variables
    from radstream.names import Names
    from tests.conftest import REPO

    names = Names("rs-lp", "123456789012", "us-east-1")
    _, policy = role_documents(REPO / "manifests" / "iam", "lambda", template_variables(names))
    arns = {kind: f"arn:aws:s3:::{name}" for kind, name in names.buckets().items()}
    return policy, arns, f"arn:aws:kinesis:us-east-1:123456789012:stream/{names.kinesis_stream}"


def test_the_lambda_policy_allows_every_call_the_handlers_make(lambda_policy):
    policy, s3, stream = lambda_policy
    needed = [
        ("s3:GetObject", f"{s3['images']}/incoming/S-1.png", {}),  # validate, prepare, store_failure's copy
        ("s3:ListBucket", s3["images"], {"s3:prefix": "incoming/S-1.json"}),  # a missing sidecar is a 404
        ("s3:PutObject", f"{s3['artifacts']}/tensors/S-1.npy", {}),  # prepare
        ("s3:GetObject", f"{s3['artifacts']}/tensors/S-1.npy", {}),  # invoke_inference
        ("s3:PutObject", f"{s3['results']}/results/S-1.json", {}),  # store_results
        ("s3:PutObject", f"{s3['results']}/failed/S-1/reason.json", {}),  # store_failure
        ("kinesis:PutRecord", stream, {}),  # send_telemetry, store_failure
    ]
    for action, resource, context in needed:
        assert decide([policy], action, resource, context) == ALLOW, (action, resource)


def test_the_lambda_policy_allows_nothing_next_to_them(lambda_policy):
    policy, s3, stream = lambda_policy
    refused = [
        ("s3:PutObject", f"{s3['images']}/incoming/S-1.png", {}),
        ("s3:DeleteObject", f"{s3['images']}/incoming/S-1.png", {}),
        ("s3:GetObject", f"{s3['results']}/results/S-1.json", {}),
        ("s3:GetObject", f"{s3['telemetry']}/raw_telemetry/x", {}),
        ("s3:PutObject", f"{s3['results']}/elsewhere/S-1.json", {}),
        ("s3:ListBucket", s3["images"], {}),
        ("s3:ListBucket", s3["images"], {"s3:prefix": "other/"}),
        ("s3:ListBucket", s3["artifacts"], {"s3:prefix": "tensors/S-1.npy"}),
        ("kinesis:PutRecords", stream, {}),
        ("kinesis:PutRecord", stream.replace("-telemetry", "-other"), {}),
    ]
    for action, resource, context in refused:
        assert decide([policy], action, resource, context) != ALLOW, (action, resource, context)
