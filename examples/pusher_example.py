"""
A batch job that pushes its metrics to a Prometheus Pushgateway when done.

    prometheus-pushgateway --web.listen-address=127.0.0.1:9091 &
    python examples/pusher_example.py http://127.0.0.1:9091
    curl -s http://127.0.0.1:9091/metrics | grep example_batch
"""

import asyncio
import sys
import time

from aioprometheus import Counter, Gauge, Registry
from aioprometheus.pusher import Pusher, PushError


async def main(gateway: str) -> int:
    registry = Registry()
    processed = Counter(
        "example_batch_records_total", "Records processed.", registry=registry
    )
    last_success = Gauge(
        "example_batch_last_success_unixtime",
        "When the batch last succeeded.",
        registry=registry,
    )

    started = time.monotonic()
    for record in range(1000):  # the "work"
        processed.inc({"kind": "even" if record % 2 == 0 else "odd"})
    last_success.set({}, time.time())
    print(f"processed 1000 records in {time.monotonic() - started:.3f}s")

    # The grouping key identifies this job's group; '/' in a value is fine.
    pusher = Pusher(
        "example_batch",
        gateway,
        grouping_key={"instance": "host-1", "dataset": "2024/01"},
    )
    try:
        await pusher.replace(registry, timeout=10)
    except PushError as exc:
        print(f"push failed: {exc}", file=sys.stderr)
        return 1
    print(f"pushed to {pusher.url}")
    return 0


if __name__ == "__main__":
    sys.exit(
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:9091"))
    )
