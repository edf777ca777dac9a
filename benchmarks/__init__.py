"""Benchmark suite: ours vs aioprometheus 23.12.0 vs prometheus_client 0.26.0
(``python -m benchmarks [--quick]``): ``__main__.py`` drives, ``workloads.py``
declares what is measured, ``peers.py`` isolates the peers, ``report.py`` reports."""
