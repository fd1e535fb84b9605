"""Run a telemetry query: through Athena on `aws`, through DuckDB over the same S3 objects elsewhere.

Both engines read the newline-delimited JSON Firehose writes under raw_telemetry/. DuckDB gets the
objects through boto3 (its httpfs extension cannot be downloaded on these machines), cached on disk
by ETag, and loads them into a table named and typed like the Glue table. Results come back as the
same plain rows from either engine: numbers as numbers, timestamps as ISO-8601 UTC strings."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from radstream.analytics.sql import Engine, QueryError, get_query, render
from radstream.errors import RadstreamError
from radstream.names import TELEMETRY_PREFIX

ATHENA_TIMEOUT_S = 300.0
_DOWNLOAD_WORKERS = 8
_GZIP_MAGIC = b"\x1f\x8b"
_HIVE_TO_DUCKDB = {"int": "INTEGER", "bigint": "BIGINT", "string": "VARCHAR", "double": "DOUBLE", "boolean": "BOOLEAN"}
_ATHENA_INTEGERS = {"tinyint", "smallint", "integer", "int", "bigint"}
_ATHENA_FLOATS = {"double", "float", "real", "decimal"}

Wait = Callable[..., Any]


@dataclass
class QueryResult:
    engine: str
    sql: str
    columns: list[str]
    rows: list[dict[str, Any]]
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"engine": self.engine, "sql": self.sql, "columns": self.columns, "rows": self.rows,
                "row_count": len(self.rows), "seconds": round(self.seconds, 3), **self.details}


def run_query(
    ctx: Any,
    *,
    name: str | None = None,
    sql: str | None = None,
    params: Mapping[str, str] | None = None,
    engine: Engine | None = None,
) -> QueryResult:
    """Run the named query (or `sql`, Athena SQL over `telemetry`) against this deployment."""
    if (name is None) == (sql is None):
        raise QueryError("give a query name or --sql, not both and not neither")
    text = get_query(name).sql if name else str(sql)
    engine = engine or ctx.target.query_engine
    names = ctx.names
    if engine == "athena":
        return run_athena(
            ctx.client("athena"),
            render(text, "athena", f"{names.glue_database}.{names.glue_table}", params),
            database=names.glue_database,
            workgroup=names.athena_workgroup,
            wait=ctx.wait,
        )
    from radstream.aws import error_code

    rendered = render(text, "duckdb", names.glue_table, params)
    bucket = names.bucket("telemetry")
    try:
        files = sync_objects(ctx.client("s3"), bucket, TELEMETRY_PREFIX, ctx.cache_dir / "telemetry")
    except Exception as exc:
        if error_code(exc) != "NoSuchBucket":
            raise
        raise RadstreamError(f"the telemetry bucket {bucket} does not exist",
                             hint="run `radstream up` first (phase 0 creates it)") from None
    return run_duckdb(rendered, files, table=names.glue_table)


# -- Athena ---------------------------------------------------------------------------------------
def run_athena(athena: Any, sql: str, *, database: str, workgroup: str, wait: Wait,
               timeout: float = ATHENA_TIMEOUT_S) -> QueryResult:
    """Run it in the deployment's workgroup (radstream.aws.athena.execute_query), rows typed."""
    from radstream.aws.athena import execute_query

    started = time.monotonic()
    query_id, execution, pages = execute_query(athena, sql, database=database, workgroup=workgroup, wait=wait,
                                               timeout=timeout)
    columns, rows = rows_from_pages(pages)
    scanned = execution.get("Statistics", {}).get("DataScannedInBytes")
    return QueryResult("athena", sql, columns, rows, time.monotonic() - started,
                       {"query_execution_id": query_id, "workgroup": workgroup, "data_scanned_bytes": scanned})


def rows_from_pages(pages: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """GetQueryResults pages to (columns, rows). Athena repeats the column names as the first row
    of the first page of a SELECT; values arrive as text and are converted by the column type."""
    columns: list[str] = []
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    first = True
    for page in pages:
        result = page["ResultSet"]
        if not columns:
            info = result.get("ResultSetMetadata", {}).get("ColumnInfo", [])
            columns = [c["Name"] for c in info]
            types = [c.get("Type", "varchar").lower() for c in info]
        for raw in result.get("Rows", []):
            texts = [cell.get("VarCharValue") for cell in raw.get("Data", [])]
            if first and texts == columns:
                first = False
                continue
            first = False
            rows.append({c: _athena_value(v, t) for c, v, t in zip(columns, texts, types, strict=False)})
    return columns, rows


def _athena_value(text: str | None, type_: str) -> Any:
    if text is None:
        return None
    base = type_.split("(")[0].strip()
    if base in _ATHENA_INTEGERS:
        return int(text)
    if base in _ATHENA_FLOATS:
        return float(text)
    if base == "boolean":
        return text.lower() == "true"
    if base.startswith("timestamp"):
        try:
            return iso_utc(datetime.fromisoformat(text.removesuffix(" UTC")))
        except ValueError:  # another zone name: keep Athena's text rather than guess
            return text
    return text


# -- DuckDB over the S3 objects -------------------------------------------------------------------
def sync_objects(s3: Any, bucket: str, prefix: str, cache_dir: Path) -> list[Path]:
    """Local copies of every object under s3://bucket/prefix, downloading only new ETags and
    dropping copies of objects that are gone. Gzipped objects keep a .gz suffix for DuckDB."""
    from concurrent.futures import ThreadPoolExecutor

    from radstream.aws.s3 import list_objects, read_object

    folder = cache_dir / bucket
    folder.mkdir(parents=True, exist_ok=True)
    wanted: dict[str, str] = {}
    for obj in list_objects(s3, bucket, prefix):
        if obj.get("Size", 1) and not obj["Key"].endswith("/"):
            stem = hashlib.sha256(obj["Key"].encode()).hexdigest()[:24] + "-" + obj["ETag"].strip('"')
            wanted[stem] = obj["Key"]
    cached: dict[str, Path] = {}
    for path in folder.iterdir():
        stem = path.name.split(".")[0]
        if stem in wanted:
            cached[stem] = path
        else:  # an object that is gone, or a download a crash interrupted
            path.unlink(missing_ok=True)

    def fetch(stem: str) -> Path:
        body = read_object(s3, bucket, wanted[stem])
        path = folder / (stem + (".json.gz" if body[:2] == _GZIP_MAGIC else ".json"))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
        os.replace(tmp, path)
        return path

    missing = [stem for stem in wanted if stem not in cached]
    with ThreadPoolExecutor(max_workers=_DOWNLOAD_WORKERS) as pool:
        fetched = dict(zip(missing, pool.map(fetch, missing), strict=True))
    return sorted(cached.get(stem) or fetched[stem] for stem in wanted)


def telemetry_schema() -> list[tuple[str, str]]:
    """(column, DuckDB type) of the telemetry table, from the pipeline's own event definition."""
    from radstream.pipeline.results import TELEMETRY_COLUMNS

    return [(name, _HIVE_TO_DUCKDB[hive]) for name, hive in TELEMETRY_COLUMNS]


def load_telemetry(con: Any, files: list[Path], table: str) -> None:
    """Create `table` typed like the Glue table and load the newline-delimited JSON files into it.
    Like the Glue table's SerDe (ignore.malformed.json), a malformed line does not fail the load."""
    schema = telemetry_schema()
    con.execute(f'CREATE TABLE "{table}" ({", ".join(f"{_q(c)} {t}" for c, t in schema)})')
    if not files:
        return
    columns = "{" + ", ".join(f"'{c}': '{t}'" for c, t in schema) + "}"
    file_list = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in files) + "]"
    con.execute(
        f'INSERT INTO "{table}" SELECT * FROM read_json({file_list}, format = \'newline_delimited\', '
        f"columns = {columns}, ignore_errors = true)"
    )


def run_duckdb(sql: str, files: list[Path], *, table: str) -> QueryResult:
    import duckdb

    started = time.monotonic()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")  # dates and hour buckets in UTC, as in Athena
        load_telemetry(con, files, table)
        try:
            cursor = con.execute(sql)
        except duckdb.Error as exc:
            raise QueryError(f"DuckDB could not run the query: {exc}") from None
        columns = [d[0] for d in cursor.description]
        rows = [{c: _plain(v) for c, v in zip(columns, row, strict=True)} for row in cursor.fetchall()]
    finally:
        con.close()
    return QueryResult("duckdb", sql, columns, rows, time.monotonic() - started, {"objects": len(files)})


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def iso_utc(moment: datetime) -> str:
    """One spelling for timestamps from either engine: UTC, 'Z', milliseconds only when present."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    spec = "milliseconds" if moment.microsecond else "seconds"
    return moment.isoformat(timespec=spec) + "Z"
