"""Idle-connection capacity and latency of trio-mcp, beside the official SDK and two floors.

Run ``python -m benchmarks --help``; ``benchmarks/README.md`` explains every figure.
"""
