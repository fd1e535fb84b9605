"""Glue Data Catalog: the analytics database, the JSON telemetry table over raw_telemetry/, and a
crawler that keeps that table's schema and partitions up to date."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radstream.aws import error_code, make_arn
from radstream.aws.iam import role_name_with_path
from radstream.aws.tags import missing

# Every crawler of the account logs here, each to a stream named after itself.
CRAWLER_LOG_GROUP = "/aws-glue/crawlers"


def glue_arn(region: str, account_id: str, kind: str, name: str, partition: str = "aws") -> str:
    return make_arn(partition, "glue", region, account_id, f"{kind}/{name}")


def _absent(exc: Exception) -> bool:
    return error_code(exc) == "EntityNotFoundException"


def _tags_drift(glue: Any, arn: str, tags: dict[str, str]) -> list[str]:
    return ["tags"] if missing(glue.get_tags(ResourceArn=arn).get("Tags", {}), tags) else []


def database_drift(glue: Any, name: str, arn: str, tags: dict[str, str]) -> list[str]:
    try:
        glue.get_database(Name=name)
    except Exception as exc:
        if _absent(exc):
            return ["missing"]
        raise
    return _tags_drift(glue, arn, tags)


def ensure_database(glue: Any, name: str, arn: str, tags: dict[str, str]) -> bool:
    drift = database_drift(glue, name, arn, tags)
    if "missing" in drift:
        glue.create_database(DatabaseInput={"Name": name, "Description": "RadStream telemetry"}, Tags=tags)
    elif "tags" in drift:
        glue.tag_resource(ResourceArn=arn, TagsToAdd=tags)
    return bool(drift)


def delete_database(glue: Any, name: str) -> None:
    """Delete the database and its tables; quiet when gone."""
    try:
        glue.delete_database(Name=name)
    except Exception as exc:
        if not _absent(exc):
            raise


Columns = Sequence[tuple[str, str]]  # (name, Hive type)


def json_table_input(name: str, location: str, columns: Columns) -> dict[str, Any]:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": {"classification": "json", "EXTERNAL": "TRUE"},
        "StorageDescriptor": {
            "Columns": [{"Name": n, "Type": t} for n, t in columns],
            "Location": location,
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.openx.data.jsonserde.JsonSerDe",
                # A malformed line must not fail a whole query.
                "Parameters": {"ignore.malformed.json": "true"},
            },
        },
    }


def _table_view(table: dict[str, Any]) -> dict[str, Any]:
    sd = table["StorageDescriptor"]
    return {
        "location": sd.get("Location"),
        "serde": sd.get("SerdeInfo", {}).get("SerializationLibrary"),
        "columns": [(c["Name"], c["Type"]) for c in sd.get("Columns", [])],
    }


def table_drift(glue: Any, database: str, name: str, location: str, columns: Columns) -> list[str]:
    try:
        table = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except Exception as exc:
        if _absent(exc):
            return ["missing"]
        raise
    wanted = _table_view(json_table_input(name, location, columns))
    current = _table_view(table)
    # The crawler may append columns it discovers; ours must be there, in order, first.
    current["columns"] = current["columns"][: len(wanted["columns"])]
    return [] if current == wanted else ["schema"]


def ensure_table(glue: Any, database: str, name: str, location: str, columns: Columns) -> bool:
    drift = table_drift(glue, database, name, location, columns)
    if "missing" in drift:
        glue.create_table(DatabaseName=database, TableInput=json_table_input(name, location, columns))
    elif "schema" in drift:
        glue.update_table(DatabaseName=database, TableInput=json_table_input(name, location, columns))
    return bool(drift)


def _crawler_settings(role_arn: str, database: str, table: str) -> dict[str, Any]:
    return {
        "Role": role_arn,
        "DatabaseName": database,
        # Crawl our existing table (its location) rather than inventing new tables.
        "Targets": {"CatalogTargets": [{"DatabaseName": database, "Tables": [table]}]},
        "SchemaChangePolicy": {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"},
    }


def crawler_drift(glue: Any, name: str, arn: str, role_arn: str, database: str, table: str,
                  tags: dict[str, str]) -> list[str]:
    try:
        crawler = glue.get_crawler(Name=name)["Crawler"]
    except Exception as exc:
        if _absent(exc):
            return ["missing"]
        raise
    wanted = _crawler_settings(role_arn, database, table)
    current = {k: crawler.get(k) for k in wanted}
    # Glue answers with the role's name however it was given.
    wanted["Role"], current["Role"] = role_name_with_path(role_arn), role_name_with_path(current["Role"] or "")
    current["Targets"] = {"CatalogTargets": [
        {"DatabaseName": t["DatabaseName"], "Tables": t["Tables"]}
        for t in (crawler.get("Targets") or {}).get("CatalogTargets", [])
    ]}
    drift = [] if current == wanted else ["settings"]
    return drift + _tags_drift(glue, arn, tags)


def ensure_crawler(glue: Any, name: str, arn: str, role_arn: str, database: str, table: str,
                   tags: dict[str, str]) -> bool:
    """Create the crawler; drifted settings are repaired by re-creating it (a crawler keeps no data,
    and moto does not implement UpdateCrawler)."""
    drift = crawler_drift(glue, name, arn, role_arn, database, table, tags)
    if "settings" in drift:
        delete_crawler(glue, name)
    if "missing" in drift or "settings" in drift:
        glue.create_crawler(Name=name, Tags=tags, **_crawler_settings(role_arn, database, table))
    elif "tags" in drift:
        glue.tag_resource(ResourceArn=arn, TagsToAdd=tags)
    return bool(drift)


def delete_crawler(glue: Any, name: str) -> None:
    try:
        glue.delete_crawler(Name=name)
    except Exception as exc:
        if not _absent(exc):
            raise
