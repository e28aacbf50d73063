"""Synthetic data with known truth, for demos, tests and benchmarks."""
