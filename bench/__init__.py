"""Benchmarks for Desk. Run ``make bench`` (``python -m bench.message_path``)."""
