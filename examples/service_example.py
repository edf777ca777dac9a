"""
Expose a custom registry with all four metric kinds on
http://127.0.0.1:8000/metrics until Ctrl-C.

    python examples/service_example.py [--port 8000]
"""

import argparse
import asyncio
import random

from aioprometheus import Counter, Gauge, Histogram, Registry, Summary
from aioprometheus.service import Service


async def main(port: int) -> None:
    registry = Registry()
    events = Counter("example_events_total", "Events seen.", registry=registry)
    queue = Gauge("example_queue_depth", "Items waiting.", registry=registry)
    latency = Histogram(
        "example_latency_seconds",
        "Latency.",
        registry=registry,
        buckets=(0.01, 0.05, 0.1, 0.5, 1.0),
    )
    sizes = Summary("example_size_bytes", "Payload sizes.", registry=registry)

    service = Service(registry=registry)
    await service.start(addr="127.0.0.1", port=port)
    async with service:  # stops the service when the block exits
        print(f"Serving metrics at {service.metrics_url}")
        while True:
            kind = random.choice(["read", "write"])
            events.inc({"kind": kind})
            queue.set({}, random.randint(0, 20))
            latency.observe({"kind": kind}, random.expovariate(10))
            sizes.observe({"kind": kind}, random.randint(100, 5000))
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        pass
