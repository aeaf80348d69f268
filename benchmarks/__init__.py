"""Benchmarks of the pipeline's hot paths: `make bench` (bench.py) and the variant study (explore.py)."""
