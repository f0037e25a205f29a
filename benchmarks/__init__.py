"""Benchmarks of the pipeline on a real broker (``make bench``)."""
