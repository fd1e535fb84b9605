import boto3
import pytest
from moto import mock_aws

from radstream.aws.athena import delete_workgroup, ensure_workgroup, execute_query, workgroup_arn, workgroup_drift
from radstream.errors import RadstreamError, WaitTimeout
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
ARN = workgroup_arn("us-east-1", "123456789012", "t1-analytics")
OUT = "s3://t1-telemetry-123456789012/athena-results/"


@pytest.fixture
def athena():
    with mock_aws():
        yield boto3.client("athena", region_name="us-east-1")


def test_create_no_op_repair_delete(athena):
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["missing"]
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is True
    config = athena.get_work_group(WorkGroup="t1-analytics")["WorkGroup"]["Configuration"]
    assert config["ResultConfiguration"]["OutputLocation"] == OUT

    seen = record_mutations(athena)
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is False
    assert seen == []

    # Someone points the workgroup elsewhere (re-created by hand: moto has no UpdateWorkGroup).
    athena.delete_work_group(WorkGroup="t1-analytics")
    athena.create_work_group(Name="t1-analytics", Tags=[{"Key": k, "Value": v} for k, v in TAGS.items()],
                             Configuration={"ResultConfiguration": {"OutputLocation": "s3://someone-else/"}})
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["configuration"]
    assert ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS) is True
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == []

    delete_workgroup(athena, "t1-analytics")
    assert workgroup_drift(athena, "t1-analytics", ARN, OUT, TAGS) == ["missing"]
    delete_workgroup(athena, "t1-analytics")


def polls(times: int):
    """A wait(description, predicate, timeout, interval=) that asks `times` times, then times out."""
    def wait(description, predicate, timeout, interval=2.0):
        for _ in range(times):
            if value := predicate():
                return value
        raise WaitTimeout(f"timed out waiting for: {description}")
    return wait


@pytest.fixture
def queued_queries():
    """Queries stay QUEUED however often they are described (moto runs them at once by default)."""
    from moto.moto_api import state_manager

    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    yield
    state_manager.unset_transition("athena::execution")


def test_a_query_runs_in_the_workgroup_and_its_results_come_back(athena):
    from moto.moto_api._internal.models import moto_api_backend

    ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS)
    rows = [{"Data": [{"VarCharValue": "events"}]}, {"Data": [{"VarCharValue": "14"}]}]
    moto_api_backend.set_athena_result(rows, [{"Name": "events", "Type": "bigint"}], "123456789012", "us-east-1")
    query_id, execution, pages = execute_query(athena, "SELECT count(*) AS events FROM telemetry", database="t1_db",
                                               workgroup="t1-analytics", wait=polls(1), timeout=5)
    assert execution["QueryExecutionId"] == query_id and execution["Status"]["State"] == "SUCCEEDED"
    assert execution["WorkGroup"] == "t1-analytics"
    assert execution["QueryExecutionContext"]["Database"] == "t1_db"
    assert [row for page in pages for row in page["ResultSet"]["Rows"]] == rows


def test_a_query_still_running_at_the_timeout_is_stopped(athena, queued_queries):
    ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS)
    with pytest.raises(WaitTimeout):
        execute_query(athena, "SELECT 1", database="t1_db", workgroup="t1-analytics", wait=polls(3), timeout=5)
    [query_id] = athena.list_query_executions(WorkGroup="t1-analytics")["QueryExecutionIds"]
    assert athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]["State"] == "CANCELLED"


def test_a_cancelled_query_says_where_it_ran(athena, queued_queries):
    ensure_workgroup(athena, "t1-analytics", ARN, OUT, TAGS)

    def cancelled_meanwhile(description, predicate, timeout, interval=2.0):
        assert predicate() is None
        query_id = description.rsplit(" ", 1)[-1]
        athena.stop_query_execution(QueryExecutionId=query_id)  # someone cancels it in the console
        return predicate()

    with pytest.raises(RadstreamError, match=r"Athena query \S+ cancelled") as raised:
        execute_query(athena, "SELECT 1", database="t1_db", workgroup="t1-analytics", wait=cancelled_meanwhile, timeout=5)
    assert raised.value.hint == "it ran in workgroup t1-analytics, database t1_db"
