"""The HorizontalPodAutoscaler's arithmetic, as the Kubernetes controller does it (pure).

desired = ceil(pods with metrics × utilisation / target), skipped within the 10 % tolerance; pods
not Ready count as 0 % when scaling up, pods without metrics as 0 % up and 100 % down, and a
direction those change is abandoned. Recommendations are stabilised (the lowest of the scale-up
window, the highest of the scale-down window, 0 s and 300 s by default), scale-up is limited per
period by the default policy (double, or 4 more pods, whichever is larger), then clamped to
[minReplicas, maxReplicas]."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TOLERANCE = 0.1
SYNC_PERIOD_S = 15.0  # --horizontal-pod-autoscaler-sync-period
DEFAULT_SCALE_UP_WINDOW_S = 0.0
DEFAULT_SCALE_DOWN_WINDOW_S = 300.0


@dataclass(frozen=True)
class PodSample:
    """One pod the HPA's target selects: whether it is Ready, its CPU use (None: no metrics yet)
    and its CPU request, both in millicores."""

    ready: bool
    usage_mcpu: float | None
    request_mcpu: float


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    utilization: int | None  # percent of the requests, over the pods with metrics; None: not computable
    problem: str | None = None  # why the metric could not be computed


def _within(ratio: float, tolerance: float) -> bool:
    return 1.0 - tolerance <= ratio <= 1.0 + tolerance


def recommend(current: int, pods: Sequence[PodSample], target_percent: float, tolerance: float = TOLERANCE) -> Recommendation:
    """What the metrics alone ask for, before stabilisation and bounds."""
    if any(p.request_mcpu <= 0 for p in pods):
        # A pod without a CPU request has no utilisation: the HPA takes no action on the metric.
        return Recommendation(current, None, "missing request for cpu")
    # As the controller groups them: no metrics first ("missing"), then not Ready ("unready").
    missing = [p for p in pods if p.usage_mcpu is None]
    unready = [p for p in pods if p.usage_mcpu is not None and not p.ready]
    measured = [p for p in pods if p.usage_mcpu is not None and p.ready]
    if not measured:
        return Recommendation(current, None, "did not receive metrics for targeted pods (pods might be unready)")
    usage, requested = sum(p.usage_mcpu or 0.0 for p in measured), sum(p.request_mcpu for p in measured)
    # Whole percents, as the controller computes them: the ratio is of the rounded-down utilisation.
    utilization = int(usage * 100 / requested)
    ratio = utilization / target_percent
    if not unready and not missing:
        if _within(ratio, tolerance):
            return Recommendation(current, utilization)
        return Recommendation(math.ceil(ratio * len(measured)), utilization)
    # Fill the gaps pessimistically for the direction the measured pods point to.
    scaling_up = ratio > 1.0
    filled_usage = usage + (0.0 if scaling_up else sum(p.request_mcpu * target_percent / 100 for p in missing))
    filled_requested = requested + sum(p.request_mcpu for p in missing) + (sum(p.request_mcpu for p in unready) if scaling_up else 0.0)
    new_ratio = int(filled_usage * 100 / filled_requested) / target_percent
    counted = len(measured) + len(missing) + (len(unready) if scaling_up else 0)
    if _within(new_ratio, tolerance) or (new_ratio > 1.0) != scaling_up:
        return Recommendation(current, utilization)
    desired = math.ceil(new_ratio * counted)
    # Never against the direction: unready pods may leave `desired` below a scale-up's `current`.
    return Recommendation(max(desired, current) if scaling_up else min(desired, current), utilization)


def stabilize(history: Sequence[tuple[float, int]], now: float, recommended: int, current: int,
              up_window_s: float = DEFAULT_SCALE_UP_WINDOW_S, down_window_s: float = DEFAULT_SCALE_DOWN_WINDOW_S) -> int:
    """Scale up only as far as every recommendation in the up window allows, down only as far as
    every one in the down window does. `history`: (when, recommended) of earlier syncs."""
    up = min([r for t, r in history if now - t <= up_window_s] + [recommended])
    down = max([r for t, r in history if now - t <= down_window_s] + [recommended])
    return min(max(current, up), down)


def limit_and_clamp(current: int, desired: int, minimum: int, maximum: int) -> int:
    """The default scale-up policy (100 % or 4 pods per period, the larger), then the bounds."""
    if desired > current:
        desired = min(desired, max(current * 2, current + 4))
    return min(max(desired, minimum), maximum)
