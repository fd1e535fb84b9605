"""The sandbox HPA's arithmetic (radstream.sandbox.kube.autoscaling) against the algorithm the
Kubernetes documentation describes ("Horizontal Pod Autoscaling", sections "Algorithm details",
"Stabilization window" and "Default Behavior"):

  desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)],
  no action while the ratio is within the 0.1 tolerance; pods not yet ready set aside and, on a
  scale-up, counted at 0 %; pods missing metrics counted at 0 % on a scale-up and at 100 % of the
  target on a scale-down; no action if that reverses the direction or lands within the tolerance;
  the utilisation reported is the one before those adjustments; no action for a metric when a
  pod has no request for it. Scale-down takes the highest recommendation of its window, scale-up
  the lowest of its own; by default at most 4 pods or 100 % more per period, whichever is more;
  then [minReplicas, maxReplicas].

Pure: every expected number is worked out from the documented rule, not read off the code."""

from __future__ import annotations

import pytest

from radstream.sandbox.kube.autoscaling import (
    DEFAULT_SCALE_DOWN_WINDOW_S,
    DEFAULT_SCALE_UP_WINDOW_S,
    TOLERANCE,
    PodSample,
    limit_and_clamp,
    recommend,
    stabilize,
)

TARGET = 50  # averageUtilization, percent of the CPU request
REQUEST = 100.0  # millicores: a pod's usage in millicores is then its utilisation in percent


def ready(percent: float, request: float = REQUEST) -> PodSample:
    return PodSample(ready=True, usage_mcpu=percent * request / 100, request_mcpu=request)


def unready(percent: float | None = None) -> PodSample:
    return PodSample(ready=False, usage_mcpu=None if percent is None else percent * REQUEST / 100, request_mcpu=REQUEST)


def missing() -> PodSample:
    """A Ready pod that metrics-server has not measured (yet)."""
    return PodSample(ready=True, usage_mcpu=None, request_mcpu=REQUEST)


def test_the_documented_defaults():
    assert TOLERANCE == 0.1
    assert DEFAULT_SCALE_UP_WINDOW_S == 0
    assert DEFAULT_SCALE_DOWN_WINDOW_S == 300


# --- recommend: the base ratio and the tolerance -------------------------------------------------


def test_one_pod_at_four_times_the_target_asks_for_four():
    # ceil(1 × 200 / 50) = 4
    assert recommend(1, [ready(200)], TARGET).replicas == 4


@pytest.mark.parametrize(("percent", "expected"), [(100, 8), (25, 2)])
def test_twice_the_target_doubles_and_half_the_target_halves(percent, expected):
    # The docs' example: 200m against 100m doubles the replicas, 50m against 100m halves them.
    assert recommend(4, [ready(percent)] * 4, TARGET).replicas == expected


def test_the_metric_is_the_average_over_the_pods():
    # (90 + 10) / 2 = 50 %: on target, whatever the spread.
    assert recommend(2, [ready(90), ready(10)], TARGET).replicas == 2
    # (150 + 50 + 100) / 3 = 100 %: ceil(3 × 100 / 50) = 6
    assert recommend(3, [ready(150), ready(50), ready(100)], TARGET).replicas == 6


@pytest.mark.parametrize(("pods", "percent"), [
    (3, 55),   # ratio 1.1: within the tolerance (the example in the brief)
    (10, 54),  # 1.08
    (10, 48),  # 0.96
    (10, 45),  # 0.9: within it on the scale-down side
])
def test_no_scaling_within_the_tolerance(pods, percent):
    result = recommend(pods, [ready(percent)] * pods, TARGET)
    assert result.replicas == pods
    assert result.utilization == percent


@pytest.mark.parametrize(("pods", "percent", "expected"), [
    (10, 56, 12),  # 1.12: ceil(11.2)
    (10, 44, 9),   # 0.88: ceil(8.8)
])
def test_scaling_just_outside_the_tolerance(pods, percent, expected):
    assert recommend(pods, [ready(percent)] * pods, TARGET).replicas == expected


def test_the_reported_utilization_is_a_percentage_of_the_requests():
    result = recommend(2, [ready(150, request=200), ready(150, request=200)], TARGET)
    assert result.utilization == 150
    assert result.replicas == 6  # ceil(2 × 150 / 50)


def test_no_metrics_at_all_is_no_action():
    result = recommend(3, [missing(), missing(), unready()], TARGET)
    assert result.replicas == 3
    assert result.utilization is None


def test_a_pod_without_a_cpu_request_leaves_the_metric_undefined():
    # "if some of the Pod's containers do not have the relevant resource request set, CPU
    # utilization for the Pod will not be defined and the autoscaler will not take any action for
    # that metric."
    without_request = PodSample(ready=True, usage_mcpu=200.0, request_mcpu=0.0)
    assert recommend(2, [ready(200), without_request], TARGET).replicas == 2


# --- recommend: pods not yet ready ----------------------------------------------------------------


def test_unready_pods_count_as_idle_on_a_scale_up():
    # The ready pod asks for a scale-up (150 % → ratio 3); its unready sibling is counted at 0 %
    # (its own 500 % is set aside): 150 / 200 = 75 % → ratio 1.5 → ceil(1.5 × 2) = 3.
    result = recommend(2, [ready(150), unready(500)], TARGET)
    assert result.replicas == 3
    assert result.utilization == 150  # the original average, before the unready pod was counted


def test_unready_pods_can_damp_a_scale_up_into_the_tolerance():
    # Ready pods alone: 100 % → ratio 2. With the two unready ones at 0 %: 200 / 400 = 50 % → 1.0.
    assert recommend(4, [ready(100), ready(100), unready(), unready()], TARGET).replicas == 4


def test_a_scale_up_that_unready_pods_reverse_is_abandoned():
    # Ready pod: 150 % → ratio 3 (up). Three unready at 0 %: 150 / 400 = 37.5 % → 0.75 (down): no action.
    assert recommend(4, [ready(150), unready(), unready(), unready()], TARGET).replicas == 4


def test_unready_pods_are_set_aside_on_a_scale_down():
    # Only the ready pods count: 10 % → ratio 0.2 → ceil(0.2 × 2) = 1 (the unready pod's 500 %
    # is not used, nor is it counted at 0 % or at the target).
    assert recommend(3, [ready(10), ready(10), unready(500)], TARGET).replicas == 1


# --- recommend: pods missing metrics ---------------------------------------------------------------


def test_missing_metrics_count_as_zero_on_a_scale_up():
    # Measured: 150 % → ratio 3. Missing at 0 %: 300 / 400 = 75 % → ceil(1.5 × 4) = 6, not ceil(3 × 4) = 12.
    result = recommend(4, [ready(150), ready(150), missing(), missing()], TARGET)
    assert result.replicas == 6
    assert result.utilization == 150


def test_missing_metrics_count_as_the_target_on_a_scale_down():
    # Measured: 10 % → ratio 0.2. Missing at 100 % of the target (50 %): (10 + 10 + 50 + 50) / 400
    # = 30 % → ratio 0.6 → ceil(0.6 × 4) = 3, not ceil(0.2 × 2) = 1.
    result = recommend(4, [ready(10), ready(10), missing(), missing()], TARGET)
    assert result.replicas == 3
    assert result.utilization == 10  # reported without the filled-in pods


def test_missing_metrics_can_damp_a_scale_down_into_the_tolerance():
    # Measured: 40 % → 0.8. Three missing at 50 %: (40 + 150) / 400 = 47.5 % → 0.95: no action.
    assert recommend(4, [ready(40), missing(), missing(), missing()], TARGET).replicas == 4


def test_a_scale_up_that_missing_metrics_reverse_is_abandoned():
    # Measured: 60 % → ratio 1.2 (up). The missing pod at 0 %: 60 / 200 = 30 % → 0.6 (down): no action.
    assert recommend(2, [ready(60), missing()], TARGET).replicas == 2


def test_missing_and_unready_pods_together_on_a_scale_up():
    # Measured: 300 % → ratio 6. Missing and unready both at 0 %: 300 / 300 = 100 % → ratio 2
    # → ceil(2 × 3) = 6, not ceil(6 × 3) = 18.
    assert recommend(3, [ready(300), missing(), unready()], TARGET).replicas == 6


# --- stabilize ----------------------------------------------------------------------------------------


NOW = 1000.0


def test_a_scale_down_keeps_the_highest_recommendation_within_its_window():
    history = [(NOW - 100, 4)]
    assert stabilize(history, NOW, recommended=1, current=4) == 4


def test_a_recommendation_older_than_the_scale_down_window_no_longer_holds():
    history = [(NOW - 301, 4)]
    assert stabilize(history, NOW, recommended=1, current=4) == 1


def test_a_scale_down_goes_as_far_as_the_highest_recommendation_in_the_window():
    history = [(NOW - 200, 2), (NOW - 100, 3), (NOW - 50, 2)]
    assert stabilize(history, NOW, recommended=1, current=5) == 3


def test_a_custom_scale_down_window():
    history = [(NOW - 3, 4)]
    assert stabilize(history, NOW, recommended=1, current=4, down_window_s=2) == 1
    assert stabilize(history, NOW, recommended=1, current=4, down_window_s=10) == 4


def test_a_scale_up_is_immediate_by_default():
    history = [(NOW - 15, 2), (NOW - 30, 1)]
    assert stabilize(history, NOW, recommended=6, current=2) == 6


def test_a_scale_up_takes_the_lowest_recommendation_within_its_window():
    history = [(NOW - 40, 5), (NOW - 20, 3)]
    assert stabilize(history, NOW, recommended=6, current=2, up_window_s=60) == 3
    assert stabilize(history, NOW, recommended=6, current=2, up_window_s=30) == 3
    assert stabilize(history, NOW, recommended=6, current=2, up_window_s=10) == 6


def test_a_scale_up_window_below_the_current_size_holds_it():
    history = [(NOW - 20, 1)]
    assert stabilize(history, NOW, recommended=6, current=2, up_window_s=60) == 2


# --- limit_and_clamp -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "desired", "expected"), [
    (1, 10, 5),    # 4 more pods beats doubling
    (2, 10, 6),    # 2 + 4 > 2 × 2
    (4, 10, 8),    # the two policies agree
    (10, 50, 20),  # doubling beats 4 more pods
    (4, 6, 6),     # within the limit
])
def test_the_default_scale_up_limit_is_the_larger_of_double_and_four_more(current, desired, expected):
    assert limit_and_clamp(current, desired, 1, 100) == expected


def test_a_scale_down_may_remove_every_pod_above_the_minimum_at_once():
    # The default scale-down policy allows 100 % of the pods per period.
    assert limit_and_clamp(10, 1, 1, 100) == 1


@pytest.mark.parametrize(("current", "desired", "minimum", "maximum", "expected"), [
    (3, 0, 1, 10, 1),
    (3, 1, 2, 10, 2),
    (8, 12, 1, 10, 10),
    (1, 10, 1, 3, 3),  # limited to 5, then clamped to 3
    (2, 2, 1, 10, 2),
])
def test_the_result_is_clamped_to_the_bounds(current, desired, minimum, maximum, expected):
    assert limit_and_clamp(current, desired, minimum, maximum) == expected
