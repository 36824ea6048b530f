"""Packaging for trio-mcp: an MCP server framework on trio, hypercorn and quart-trio."""

from setuptools import find_packages, setup

setup(
    name="trio-mcp",
    version="0.1.0",
    description="Serve the Model Context Protocol over HTTP with trio's structured concurrency",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["trio_mcp", "trio_mcp.*"]),
    package_data={"trio_mcp": ["py.typed"]},
    install_requires=[
        "trio>=0.25",
        "hypercorn>=0.17",
        "quart-trio>=0.11",
        "cattrs>=24.1",
        "attrs>=23.1",
        # Fernet seals MCP 2026-07-28's requestState (trio_mcp/_sealing.py).
        "cryptography>=42",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-trio>=0.8",
            "mcp>=2.3",
            "httpx>=0.27",
            "jsonschema>=4.20",
            # Drives Debian's chromium through its chromium-driver (tests/test_browser.py).
            "selenium>=4.20",
            "hypothesis>=6.100",
            # Every host is tested: uvicorn on uvloop with httptools, and mounting in a
            # Starlette app (tests/hosts.py, tests/test_hosting.py).
            "uvicorn>=0.30",
            "uvloop>=0.19",
            "httptools>=0.6",
            "starlette>=0.37",
            # The benchmark's smoke test draws its plot too, so that code cannot rot.
            "matplotlib>=3.7",
            # Workers sharing a real redis-server (tests/test_redis_*.py).
            "coredis>=6.9,<7",
        ],
        # Several workers or hosts as one server (Settings.redis_url): tasks and
        # subscriptions/listen notifications shared on Redis. coredis runs on trio.
        "redis": ["coredis>=6.9,<7"],
        # The fastest host measured (benchmarks/RESULTS.md): trio as a guest on uvicorn's
        # uvloop, with httptools parsing HTTP/1.1. python -m trio_mcp uses it when present.
        "uvicorn": ["uvicorn>=0.30", "uvloop>=0.19", "httptools>=0.6"],
        # The benchmark's plot, the asyncio hosts it measures trio-mcp under, and the
        # Redis client of its Redis section (issue 14; redis-server from Debian's package).
        "bench": [
            "matplotlib>=3.7",
            "uvicorn>=0.30",
            "uvloop>=0.19",
            "httptools>=0.6",
            "coredis>=6.9,<7",
        ],
        "lint": ["ruff>=0.6", "mypy>=1.10"],
    },
    entry_points={"console_scripts": ["trio-mcp=trio_mcp.__main__:main"]},
    classifiers=[
        "Framework :: Trio",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP :: HTTP Servers",
    ],
)
