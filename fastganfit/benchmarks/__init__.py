"""Benchmark runners: MICC Florence, NoW and the synthetic benchmark, with their reports and figures."""
