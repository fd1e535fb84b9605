"""Benchmarks that print numbers; they never assert on timings."""
