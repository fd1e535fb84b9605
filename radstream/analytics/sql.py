"""The named telemetry queries: read once from queries.sql (Athena SQL), rendered for an engine.

Rendering parses the query with sqlglot, puts the real table in place of the logical `telemetry`,
fills `:param` placeholders with quoted literals (never by string pasting), and writes it in the
engine's dialect. Pure: no client in here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from radstream.errors import RadstreamError

Engine = Literal["athena", "duckdb"]
ENGINES: tuple[Engine, ...] = ("athena", "duckdb")
SOURCE_DIALECT = "athena"
# What queries (named or --sql) call the telemetry table; the Glue table's own name works too.
LOGICAL_TABLES = frozenset({"telemetry", "raw_telemetry"})
_NAME_LINE = re.compile(r"^--\s*name:\s*([a-z][a-z0-9_]*)\s*$")


class QueryError(RadstreamError):
    """A query that cannot be run as asked (unknown name, bad SQL, missing parameter)."""

    exit_code = 2


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str

    @property
    def parameters(self) -> list[str]:
        from sqlglot import exp

        return sorted({p.name for p in _parse(self.sql).find_all(exp.Placeholder)})


def parse_named_queries(text: str) -> dict[str, NamedQuery]:
    """`-- name: x` starts a query; the comment lines right after it are its description."""
    queries: dict[str, NamedQuery] = {}
    current: str | None = None
    description: list[str] = []
    body: list[str] = []

    def close() -> None:
        if current is None:
            return
        sql = "\n".join(body).strip().rstrip(";").strip()
        if not sql:
            raise QueryError(f"query {current!r} in queries.sql has no SQL")
        queries[current] = NamedQuery(current, " ".join(description), sql)

    for line in text.splitlines():
        match = _NAME_LINE.match(line.strip())
        if match:
            close()
            current, description, body = match.group(1), [], []
            if current in queries:
                raise QueryError(f"query {current!r} is defined twice in queries.sql")
        elif current is not None:
            stripped = line.strip()
            if stripped.startswith("--") and not body:
                description.append(stripped.lstrip("-").strip())
            elif stripped and not stripped.startswith("--"):
                body.append(line.rstrip())
    close()
    return queries


@lru_cache(maxsize=1)
def named_queries() -> dict[str, NamedQuery]:
    """The queries shipped with the package."""
    from importlib.resources import files

    return parse_named_queries(files("radstream.analytics").joinpath("queries.sql").read_text())


def get_query(name: str) -> NamedQuery:
    queries = named_queries()
    if name not in queries:
        raise QueryError(f"no query named {name!r}", hint=f"known queries: {', '.join(sorted(queries))} (or --list)")
    return queries[name]


def _parse(sql: str) -> Any:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        statements = [s for s in sqlglot.parse(sql, read=SOURCE_DIALECT) if s is not None]
    except ParseError as exc:
        raise QueryError(f"the SQL does not parse: {exc}", hint="write Athena (Trino) SQL") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise QueryError("expected exactly one read-only query (SELECT, WITH … SELECT, UNION …)")
    return statements[0]


def render(sql: str, engine: Engine, table: str, params: Mapping[str, str] | None = None) -> str:
    """`sql` (Athena SQL over `telemetry`) for `engine`, reading `table` ("db.table" or "table")."""
    from sqlglot import exp

    if engine not in ENGINES:
        raise QueryError(f"unknown engine {engine!r}; expected one of {ENGINES}")
    params = dict(params or {})
    tree = _parse(sql)
    unused = set(params) - {p.name for p in tree.find_all(exp.Placeholder)}
    if unused:
        raise QueryError(f"the query has no parameter(s) {', '.join(sorted(unused))}")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    target = exp.to_table(table, dialect=SOURCE_DIALECT)

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.args.get("db") and isinstance(node.this, exp.Identifier):
            name = node.name.lower()
            if name in LOGICAL_TABLES and name not in ctes:
                replaced = target.copy()
                if node.alias:
                    replaced.set("alias", node.args["alias"].copy())
                return replaced
        if isinstance(node, exp.Placeholder):
            if node.name not in params:
                raise QueryError(f"the query needs a value for :{node.name}", hint=f"add --param {node.name}=VALUE")
            return exp.Literal.string(params[node.name])
        if engine == "duckdb" and isinstance(node, exp.ApproxQuantile):
            # Athena only has the approximate percentile; DuckDB computes the exact one cheaply.
            return exp.Anonymous(this="QUANTILE_CONT", expressions=[node.this.copy(), node.args["quantile"].copy()])
        if engine == "duckdb" and isinstance(node, exp.CountIf):
            # DuckDB's count_if gives NULL over no rows where Trino's gives 0; a plain count agrees.
            return exp.Count(this=exp.Case().when(node.this.copy(), exp.Literal.number(1)))
        return node

    return tree.transform(rewrite).sql(dialect=engine, pretty=True)
