"""Benchmark suite: ours vs aioprometheus 23.12.0 vs prometheus_client 0.26.0.

Run ``python -m benchmarks`` (or ``--quick``) from the repository root.  See
``__main__.py`` for the driver, ``workloads.py`` for what is measured and how,
``peers.py`` for the isolated peer installs and ``report.py`` for the output.
"""
