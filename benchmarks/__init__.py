"""Idle-connection capacity and latency of trio-mcp, beside the official SDKs and the floors.

Run ``python -m benchmarks --help``; ``benchmarks/README.md`` explains every figure.
"""
