"""Benchmark scripts (not tests): ``python -m benchmarks.module_bench`` and ``python -m benchmarks.model_bench``."""
