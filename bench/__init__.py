"""Benchmarks: each scenario prints its figure beside a raw baseline measured in the same run."""
