"""Benchmarks that print numbers; they never assert on timings."""

# In the state dir: each handler's duration as `radstream bench pipeline` last measured it, which
# `radstream cost` prices.
DURATIONS_FILE = "bench-pipeline.json"
