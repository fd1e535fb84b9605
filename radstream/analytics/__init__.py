"""Telemetry analytics: the named SQL queries, their runner (Athena on aws, DuckDB over the same S3
objects on the sandbox), the cost model and the evidence report."""
