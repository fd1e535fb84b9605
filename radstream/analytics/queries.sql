-- RadStream telemetry queries.
--
-- Written once, in Athena (Trino) SQL, against the logical table `telemetry`: one row per pipeline
-- telemetry event (radstream.pipeline.results.TELEMETRY_COLUMNS). radstream.analytics.sql puts the
-- real table in its place and transpiles to DuckDB for the sandbox. event_time is an ISO-8601
-- string (the JSON SerDe cannot read it as a timestamp), hence from_iso8601_timestamp.
--
-- Each query starts with `-- name: <name>`, then `-- <one-line description>`, then the statement.
-- `:param` placeholders are filled with quoted literals (radstream query NAME --param key=value).

-- name: total_events
-- Telemetry events and distinct studies seen.
SELECT count(*) AS events, count(DISTINCT study_id) AS studies
FROM telemetry;

-- name: average_processing_time
-- Mean, minimum and maximum end-to-end processing time of successful studies.
SELECT count(*) AS studies,
       round(avg(processing_time_ms), 3) AS avg_ms,
       min(processing_time_ms) AS min_ms,
       max(processing_time_ms) AS max_ms
FROM telemetry
WHERE status = 'SUCCESS';

-- name: events_by_stage
-- Per pipeline stage: events it timed, its mean time, and the failures it raised.
WITH stages AS (
    SELECT 1 AS stage_order, 'validate' AS stage, validate_ms AS ms, error_stage FROM telemetry
    UNION ALL SELECT 2, 'prepare', prepare_ms, error_stage FROM telemetry
    UNION ALL SELECT 3, 'inference', inference_ms, error_stage FROM telemetry
    UNION ALL SELECT 4, 'store', store_ms, error_stage FROM telemetry
)
SELECT stage,
       count(ms) AS timed_events,
       round(avg(ms), 3) AS avg_ms,
       count_if(error_stage = stage) AS failed_events
FROM stages
GROUP BY stage_order, stage
ORDER BY stage_order;

-- name: daily_inference_latency
-- Mean inference time per day (UTC).
SELECT date(from_iso8601_timestamp(event_time)) AS day,
       count(inference_ms) AS studies,
       round(avg(inference_ms), 3) AS avg_inference_ms
FROM telemetry
WHERE inference_ms IS NOT NULL
GROUP BY date(from_iso8601_timestamp(event_time))
ORDER BY day;

-- name: slowest_studies
-- The ten slowest successful studies, with their per-stage times.
SELECT study_id, event_time, processing_time_ms, validate_ms, prepare_ms, inference_ms, store_ms
FROM telemetry
WHERE status = 'SUCCESS'
ORDER BY processing_time_ms DESC, study_id
LIMIT 10;

-- name: errors_over_time
-- Failed studies per hour (UTC).
SELECT date_trunc('hour', from_iso8601_timestamp(event_time)) AS hour,
       count(*) AS failures
FROM telemetry
WHERE status = 'FAILED'
GROUP BY date_trunc('hour', from_iso8601_timestamp(event_time))
ORDER BY hour;

-- name: event_types
-- Events by outcome (SUCCESS, FAILED) and their share of all events.
SELECT status,
       count(*) AS events,
       round(100 * CAST(count(*) AS double) / sum(count(*)) OVER (), 2) AS percent
FROM telemetry
GROUP BY status
ORDER BY events DESC, status;

-- name: latency_percentiles
-- p50, p95 and p99 of the end-to-end processing time of successful studies.
SELECT count(*) AS studies,
       approx_percentile(processing_time_ms, 0.5) AS p50_ms,
       approx_percentile(processing_time_ms, 0.95) AS p95_ms,
       approx_percentile(processing_time_ms, 0.99) AS p99_ms
FROM telemetry
WHERE status = 'SUCCESS';

-- name: stage_latency_percentiles
-- p50, p95 and p99 of each pipeline stage.
WITH stages AS (
    SELECT 1 AS stage_order, 'validate' AS stage, validate_ms AS ms FROM telemetry
    UNION ALL SELECT 2, 'prepare', prepare_ms FROM telemetry
    UNION ALL SELECT 3, 'inference', inference_ms FROM telemetry
    UNION ALL SELECT 4, 'store', store_ms FROM telemetry
)
SELECT stage,
       count(*) AS events,
       round(avg(ms), 3) AS avg_ms,
       approx_percentile(ms, 0.5) AS p50_ms,
       approx_percentile(ms, 0.95) AS p95_ms,
       approx_percentile(ms, 0.99) AS p99_ms
FROM stages
WHERE ms IS NOT NULL
GROUP BY stage_order, stage
ORDER BY stage_order;

-- name: throughput_per_hour
-- Events, successes and failures per hour (UTC).
SELECT date_trunc('hour', from_iso8601_timestamp(event_time)) AS hour,
       count(*) AS events,
       count_if(status = 'SUCCESS') AS succeeded,
       count_if(status = 'FAILED') AS failed
FROM telemetry
GROUP BY date_trunc('hour', from_iso8601_timestamp(event_time))
ORDER BY hour;

-- name: throughput_per_minute
-- Events, successes and failures per minute (UTC): the shape of a load test.
SELECT date_trunc('minute', from_iso8601_timestamp(event_time)) AS minute,
       count(*) AS events,
       count_if(status = 'SUCCESS') AS succeeded,
       count_if(status = 'FAILED') AS failed
FROM telemetry
GROUP BY date_trunc('minute', from_iso8601_timestamp(event_time))
ORDER BY minute;

-- name: failure_reasons
-- Failures grouped by the stage and error type that caused them, with one example message.
SELECT error_stage,
       error_type,
       count(*) AS failures,
       min(error_message) AS example_message
FROM telemetry
WHERE status = 'FAILED'
GROUP BY error_stage, error_type
ORDER BY failures DESC, error_stage, error_type;

-- name: success_rate
-- Share of studies that made it through the whole pipeline.
SELECT count(*) AS events,
       count_if(status = 'SUCCESS') AS succeeded,
       count_if(status = 'FAILED') AS failed,
       round(100 * CAST(count_if(status = 'SUCCESS') AS double) / nullif(count(*), 0), 2) AS success_rate_percent
FROM telemetry;

-- name: events_per_view
-- Events per radiographic view (PA, AP, LATERAL...) and their mean processing time.
SELECT coalesce(view, 'unknown') AS view,
       count(*) AS events,
       count_if(status = 'SUCCESS') AS succeeded,
       round(avg(processing_time_ms), 3) AS avg_ms
FROM telemetry
GROUP BY coalesce(view, 'unknown')
ORDER BY events DESC, view;

-- name: model_versions
-- Every model version that produced results, its card (trained? on what? licence), its model file's sha256, first and last seen.
SELECT model_name,
       model_version,
       model_trained,
       model_trained_on,
       model_licence,
       model_sha256,
       count(*) AS studies,
       min(from_iso8601_timestamp(event_time)) AS first_seen,
       max(from_iso8601_timestamp(event_time)) AS last_seen
FROM telemetry
WHERE model_name IS NOT NULL
GROUP BY model_name, model_version, model_trained, model_trained_on, model_licence, model_sha256
ORDER BY first_seen, model_name, model_version;

-- name: findings_distribution
-- How often each finding was the most probable one, and its mean probability.
SELECT top_finding,
       count(*) AS studies,
       round(avg(top_probability), 4) AS avg_probability
FROM telemetry
WHERE status = 'SUCCESS' AND top_finding IS NOT NULL
GROUP BY top_finding
ORDER BY studies DESC, top_finding;

-- name: recent_failures
-- The twenty most recent failures with their reason and input object.
SELECT event_time, study_id, error_stage, error_type, error_message, input_key_sha256
FROM telemetry
WHERE status = 'FAILED'
ORDER BY event_time DESC, study_id
LIMIT 20;

-- name: processing_times
-- Every successful study's end-to-end and per-stage times, oldest first (histograms, exports).
SELECT study_id, event_time, processing_time_ms, validate_ms, prepare_ms, inference_ms, store_ms
FROM telemetry
WHERE status = 'SUCCESS'
ORDER BY event_time, study_id;

-- name: study_events
-- Every event of one study (--param study_id=...).
SELECT *
FROM telemetry
WHERE study_id = :study_id
ORDER BY event_time, event_id;
