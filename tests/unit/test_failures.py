"""What the user sees when AWS says no: botocore's credential, expiry and access errors become errors
with a hint (AccessDenied naming the action); --json carries error, hint and type; a failed run names
the phase and step, and the phase lists its failing step."""

from __future__ import annotations

from pathlib import Path

from botocore.exceptions import ClientError, NoCredentialsError

from radstream.engine import Engine
from radstream.errors import ConfigError
from radstream.failures import error_fields, user_error
from radstream.phases.base import Step
from tests.support.marker_phase import MarkerPhase, MarkerStep
from tests.unit.test_engine import make_ctx


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def test_access_denied_names_the_action_and_where_to_grant_it():
    denied = client_error("AccessDenied", "User: arn:aws:iam::123456789012:user/op is not authorized to perform: "
                          "eks:CreateNodegroup on resource: arn:aws:eks:us-east-1:123456789012:cluster/c", "CreateNodegroup")
    fields = error_fields(denied)
    assert fields["type"] == "AccessDenied" and "eks:CreateNodegroup" in fields["error"]
    assert "eks:CreateNodegroup" in fields["hint"] and "operator.json" in fields["hint"]


def test_access_denied_without_an_action_in_the_message_names_the_operation():
    fields = error_fields(client_error("AccessDeniedException", "Access denied", "PutRecord"))
    assert "PutRecord" in fields["error"] and "PutRecord" in fields["hint"]


def test_expired_and_missing_credentials_say_what_to_do():
    expired = error_fields(client_error("ExpiredToken", "The security token included in the request is expired", "ListBuckets"))
    assert expired["type"] == "ExpiredToken" and "aws sso login" in expired["hint"] and "resumes" in expired["hint"]
    missing = error_fields(NoCredentialsError())
    assert missing["type"] == "NoCredentialsError" and "aws.profile" in missing["hint"]
    assert user_error(NoCredentialsError()).exit_code == 1


def test_rejected_keys_and_an_expired_sso_session_say_what_to_do():
    from botocore.exceptions import SSOTokenLoadError

    rejected = error_fields(client_error("InvalidClientTokenId", "The security token included in the request is invalid",
                                         "GetCallerIdentity"))
    assert rejected["type"] == "InvalidClientTokenId" and "access key" in rejected["hint"] and "doctor" in rejected["hint"]
    sso = error_fields(SSOTokenLoadError(error_msg="the token has expired"))
    assert sso["type"] == "SSOTokenLoadError" and "aws sso login" in sso["hint"]


def test_radstream_errors_keep_their_hint_and_type_and_other_errors_their_name():
    assert error_fields(ConfigError("bad field", hint="fix it")) == {"error": "bad field\n  → fix it", "hint": "fix it",
                                                                     "type": "ConfigError"}
    assert error_fields(KeyError("x")) == {"error": "KeyError: 'x'", "hint": None, "type": "KeyError"}


class Refused(Step):
    name = "refused"

    def apply(self, ctx):
        raise client_error("AccessDenied", "is not authorized to perform: s3:PutBucketPolicy on resource: b", "PutBucketPolicy")


def test_a_failed_run_names_phase_and_step_and_the_phase_lists_the_failing_step(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()

    class Denied(MarkerPhase):
        def steps(self, ctx):
            return [MarkerStep(world, "alpha"), Refused(), MarkerStep(world, "gamma")]

    engine = Engine(ctx, [Denied(world)])
    report = engine.report(engine.run([0]))
    assert report["ok"] is False and (report["phase"], report["step"], report["type"]) == (0, "refused", "AccessDenied")
    assert "s3:PutBucketPolicy" in report["error"] and "s3:PutBucketPolicy" in report["hint"]
    assert [(s["name"], s["status"]) for s in report["phases"][0]["steps"]] == [("alpha", "done"), ("refused", "failed")]
    assert report["phases"][0]["failure"]["step"] == "refused"


def test_a_successful_run_reports_no_failure(tmp_path: Path):
    ctx, world = make_ctx(tmp_path), tmp_path / "world"
    world.mkdir()
    engine = Engine(ctx, [MarkerPhase(world)])
    report = engine.report(engine.run([0]))
    assert report["ok"] and "step" not in report and "failure" not in report["phases"][0]
