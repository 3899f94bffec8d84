"""Metrics, the held-out quality benchmark, complexity counts and speed benchmarks."""
