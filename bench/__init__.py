"""Benchmarks: one module per benchmark, run by ``centinela bench NAME`` (see shared MEASURE.md)."""
