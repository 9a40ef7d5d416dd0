"""Benchmark support: the typed figure every bench/bench_<name>.py returns, and the harness behind
``qnode bench`` that runs those modules and reports their figures."""

from .figure import Figure, Reference, Target

__all__ = ["Figure", "Reference", "Target"]
