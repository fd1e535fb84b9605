"""CloudWatch's alarm evaluation for the emulated account, which moto stores but never runs: every
few seconds each metric alarm on one metric is judged over its last Period (EvaluationPeriods of
them) against its threshold, missing data treated as the alarm says, and its state set as
SetAlarmState would. Metric math alarms are left as they are (no expression engine here)."""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

log = logging.getLogger(__name__)

INTERVAL_S = 5.0
_COMPARE = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_MISSING = {"notBreaching": "OK", "breaching": "ALARM", "ignore": None, "missing": "INSUFFICIENT_DATA"}


def statistic(values: list[float], name: str) -> float:
    """CloudWatch's statistics over raw datapoints: Average, Sum, Minimum, Maximum, SampleCount, pNN."""
    if name.startswith("p"):
        ranked = sorted(values)
        return ranked[max(0, math.ceil(float(name[1:]) / 100 * len(ranked)) - 1)]
    return {"Average": lambda: sum(values) / len(values), "Sum": lambda: sum(values), "Minimum": lambda: min(values),
            "Maximum": lambda: max(values), "SampleCount": lambda: float(len(values))}[name]()


def judge(alarm: Any, values: list[float]) -> tuple[str | None, str]:
    """(new state or None to keep it, reason) for a single-metric alarm given its window's values."""
    if not values:
        return _MISSING.get(alarm.treat_missing_data or "missing"), "no datapoints in the evaluation window"
    name = alarm.extended_statistic or alarm.statistic
    value = statistic(values, name)
    breaching = _COMPARE[alarm.comparison_operator](value, alarm.threshold)
    verb = "crossed" if breaching else "did not cross"
    return ("ALARM" if breaching else "OK"), f"{name} {value:g} {verb} the threshold ({alarm.threshold:g})"


def _by_metric(backend: Any) -> dict[tuple[str, str], list[Any]]:
    """The datapoints put into the account, by (namespace, metric name), read once per pass. Not
    get_all_metrics(): that also computes moto's AWS/S3 storage metrics by sizing every object of
    every bucket, which the pipeline's alarms never read."""
    found: dict[tuple[str, str], list[Any]] = {}
    for datum in list(backend.metric_data):
        if hasattr(datum, "value"):
            found.setdefault((datum.namespace, datum.name), []).append(datum)
    return found


def _window_values(data: dict[tuple[str, str], list[Any]], alarm: Any, now: datetime) -> list[float]:
    start = now - timedelta(seconds=int(alarm.period) * int(alarm.evaluation_periods or 1))
    wanted = {(d.name, d.value) for d in alarm.dimensions}
    values = []
    for datum in data.get((alarm.namespace, alarm.metric_name), []):
        stamp = datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=timezone.utc)
        if stamp >= start and {(d.name, d.value) for d in datum.dimensions} == wanted:
            values.append(float(datum.value))
    return values


def evaluate(backend: Any, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    alarms = [a for a in list(backend.alarms.values())
              if not a.metric_data_queries and a.metric_name and a.comparison_operator in _COMPARE]
    data = _by_metric(backend) if alarms else {}
    for alarm in alarms:
        state, reason = judge(alarm, _window_values(data, alarm, now))
        if state is not None and state != alarm.state_value:
            backend.set_alarm_state(alarm.name, f"Threshold Crossed: {reason}", json.dumps({"evaluated": now.isoformat()}),
                                    state)


class AlarmEvaluator:
    def __init__(self, interval: float = INTERVAL_S) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="alarm-evaluator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        from moto.cloudwatch.models import cloudwatch_backends

        while not self._stop.wait(self.interval):
            for account in list(cloudwatch_backends):
                for region in list(cloudwatch_backends[account].keys()):
                    try:
                        evaluate(cloudwatch_backends[account][region])
                    except Exception:  # one bad alarm must not stop the others' evaluation
                        log.exception("alarm evaluation failed in %s/%s", account, region)
