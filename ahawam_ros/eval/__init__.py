"""Evaluation: offline (bag) and closed-loop evaluation, and benchmarks."""
