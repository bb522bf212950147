"""Benchmark evaluation: generation, deterministic metrics (CHAIR, AMBER, POPE), judged metrics, report."""
