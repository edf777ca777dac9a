"""
``python -m aioprometheus``: a small instrumented demo application.

It simulates a service handling requests on a few routes and exposes its
metrics (a counter, a gauge, a histogram and a summary) at
``http://127.0.0.1:8000/metrics``. Point a browser, ``curl`` or Prometheus at
it. Stop it with Ctrl-C (or SIGTERM). ``$AIOPROMETHEUS_DEMO_PORT`` changes the
default port, so a wrapper (or a test) can run the bare command elsewhere.
"""

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
from typing import List, Optional

from .collectors import Counter, Gauge, Histogram, Registry, Summary
from .service import Service

_package = "aioprometheus"
PORT_ENV = "AIOPROMETHEUS_DEMO_PORT"
ROUTES = ("/", "/users", "/users/{user_id}", "/orders")


class DemoApp:
    """A pretend web service that records what it does in a registry."""

    def __init__(self, registry: Registry) -> None:
        self.requests = Counter(
            "demo_requests_total",
            "Requests handled.",
            const_labels={"app": "demo"},
            registry=registry,
        )
        self.in_progress = Gauge(
            "demo_requests_in_progress",
            "Requests being handled now.",
            const_labels={"app": "demo"},
            registry=registry,
        )
        self.latency = Histogram(
            "demo_request_duration_seconds",
            "Time spent handling a request.",
            const_labels={"app": "demo"},
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
        )
        self.payload = Summary(
            "demo_response_size_bytes",
            "Size of the responses sent.",
            const_labels={"app": "demo"},
            registry=registry,
        )
        self.rng = random.Random()

    async def handle(self, route: str) -> None:
        labels = {"route": route}
        self.in_progress.inc(labels)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.sleep(self.rng.expovariate(1 / 0.03))
            status = "500" if self.rng.random() < 0.02 else "200"
            self.requests.inc({"route": route, "status": status})
            self.payload.observe(labels, self.rng.randint(200, 20_000))
        finally:
            self.latency.observe(labels, loop.time() - started)
            self.in_progress.dec(labels)

    async def run(self) -> None:
        tasks = set()
        while True:
            task = asyncio.ensure_future(self.handle(self.rng.choice(ROUTES)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(self.rng.uniform(0.005, 0.05))


async def serve(host: str, port: int, metrics_path: str) -> None:
    registry = Registry()
    app = DemoApp(registry)
    service = Service(registry=registry)
    await service.start(addr=host, port=port, metrics_url=metrics_path)
    print(
        f"{_package} demo: metrics at {service.metrics_url} (Ctrl-C to stop)",
        flush=True,
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    worker = asyncio.ensure_future(app.run())
    try:
        await stop.wait()
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await service.stop()
    print(f"{_package} demo: stopped", flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {_package}",
        description="Run a small demo application instrumented with aioprometheus.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    try:
        default_port = int(os.environ.get(PORT_ENV, "8000"))
    except ValueError:
        parser.error(f"${PORT_ENV} must be a port number, got {os.environ[PORT_ENV]!r}")
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"port to listen on, 0 for any free one (default: ${PORT_ENV} or 8000)",
    )
    parser.add_argument(
        "--metrics-path",
        default="/metrics",
        help="path of the metrics (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    try:
        asyncio.run(serve(args.host, args.port, args.metrics_path))
    except KeyboardInterrupt:  # platforms without loop signal handlers
        pass
    except OSError as exc:
        print(
            f"{_package} demo: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
