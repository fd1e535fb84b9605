import boto3
import pytest
from moto import mock_aws

from radstream.aws.glue import (
    crawler_drift,
    database_drift,
    delete_crawler,
    delete_database,
    ensure_crawler,
    ensure_database,
    ensure_table,
    glue_arn,
    json_table_input,
    table_drift,
)
from radstream.pipeline.results import TELEMETRY_COLUMNS
from tests.support.aws import record_mutations

TAGS = {"radstream:deployment": "t1", "radstream:phase": "0"}
DB, TABLE, CRAWLER = "t1_analytics", "raw_telemetry", "t1-telemetry-crawler"
DB_ARN = glue_arn("us-east-1", "123456789012", "database", DB)
CRAWLER_ARN = glue_arn("us-east-1", "123456789012", "crawler", CRAWLER)
LOCATION = "s3://t1-telemetry-123456789012/raw_telemetry/"
ROLE = "arn:aws:iam::123456789012:role/t1-glue-crawler-role"


@pytest.fixture
def glue():
    with mock_aws():
        yield boto3.client("glue", region_name="us-east-1")


def converge(glue) -> None:
    ensure_database(glue, DB, DB_ARN, TAGS)
    ensure_table(glue, DB, TABLE, LOCATION, TELEMETRY_COLUMNS)
    ensure_crawler(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS)


def test_json_table_reads_newline_delimited_json():
    sd = json_table_input(TABLE, LOCATION, TELEMETRY_COLUMNS)["StorageDescriptor"]
    assert sd["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert sd["Location"] == LOCATION
    assert [(c["Name"], c["Type"]) for c in sd["Columns"]] == list(TELEMETRY_COLUMNS)


def test_create_no_op_repair_delete(glue):
    assert database_drift(glue, DB, DB_ARN, TAGS) == ["missing"]
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) == ["missing"]
    converge(glue)
    assert glue.get_crawler(Name=CRAWLER)["Crawler"]["Targets"]["CatalogTargets"] == [
        {"DatabaseName": DB, "Tables": [TABLE]}]

    seen = record_mutations(glue)
    converge(glue)
    assert seen == []

    # The crawler appended a column it discovered: not drift. Someone moved the table: drift.
    table = glue.get_table(DatabaseName=DB, Name=TABLE)["Table"]
    extra = json_table_input(TABLE, LOCATION, TELEMETRY_COLUMNS)
    extra["StorageDescriptor"]["Columns"].append({"Name": "discovered", "Type": "string"})
    glue.update_table(DatabaseName=DB, TableInput=extra)
    assert table_drift(glue, DB, TABLE, LOCATION, TELEMETRY_COLUMNS) == []
    moved = json_table_input(TABLE, "s3://elsewhere/", TELEMETRY_COLUMNS)
    glue.update_table(DatabaseName=DB, TableInput=moved)
    assert table_drift(glue, DB, TABLE, LOCATION, TELEMETRY_COLUMNS) == ["schema"]
    # Someone re-creates the crawler with another role (moto has no UpdateCrawler).
    glue.delete_crawler(Name=CRAWLER)
    glue.create_crawler(Name=CRAWLER, Role="arn:aws:iam::123456789012:role/other", DatabaseName=DB,
                        Targets={"CatalogTargets": [{"DatabaseName": DB, "Tables": [TABLE]}]}, Tags=TAGS)
    glue.untag_resource(ResourceArn=DB_ARN, TagsToRemove=["radstream:phase"])
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) == ["settings"]
    assert database_drift(glue, DB, DB_ARN, TAGS) == ["tags"]
    converge(glue)
    assert table_drift(glue, DB, TABLE, LOCATION, TELEMETRY_COLUMNS) == []
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) == []
    assert database_drift(glue, DB, DB_ARN, TAGS) == []
    assert table["StorageDescriptor"]["Columns"][0] == {"Name": TELEMETRY_COLUMNS[0][0], "Type": TELEMETRY_COLUMNS[0][1]}

    delete_crawler(glue, CRAWLER)
    delete_database(glue, DB)
    assert database_drift(glue, DB, DB_ARN, TAGS) == ["missing"]
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) == ["missing"]
    delete_crawler(glue, CRAWLER)
    delete_database(glue, DB)


@pytest.fixture
def glue_answers_role_names(monkeypatch):
    from moto.glue.models import FakeCrawler

    from radstream.sandbox.glue_crawler_role import crawler_answers_role_name

    monkeypatch.setattr(FakeCrawler, "as_dict", crawler_answers_role_name(FakeCrawler.as_dict))


def test_a_crawler_read_back_with_its_role_name_is_not_drift(glue_answers_role_names, glue):
    converge(glue)
    assert glue.get_crawler(Name=CRAWLER)["Crawler"]["Role"] == "t1-glue-crawler-role"  # as Glue answers
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) == []
    seen = record_mutations(glue)
    assert ensure_crawler(glue, CRAWLER, CRAWLER_ARN, ROLE, DB, TABLE, TAGS) is False
    assert seen == []
    # A different role is still drift, whichever way it is spelled.
    other = "arn:aws:iam::123456789012:role/service-role/other"
    assert crawler_drift(glue, CRAWLER, CRAWLER_ARN, other, DB, TABLE, TAGS) == ["settings"]
