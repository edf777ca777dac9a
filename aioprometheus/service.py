"""
An asyncio HTTP(S) exporter that lets Prometheus scrape the metrics of an
application.

.. code-block:: python

    svc = Service()
    await svc.start(addr="127.0.0.1", port=8000)
    ...
    await svc.stop()

or, as an async context manager that starts on enter (with the ``start``
defaults unless already started) and stops on exit:

.. code-block:: python

    async with Service() as svc:
        print(svc.metrics_url)
"""

import asyncio
import inspect
import logging
import signal
import threading
import warnings
from ssl import SSLContext
from types import FrameType
from typing import Any, Dict, List, Optional

import aiohttp.web
from aiohttp import hdrs

from .collectors import REGISTRY, Collector, Registry
from .renderer import accepts_gzip, negotiate_encoding, render

__all__ = ["DEFAULT_METRICS_PATH", "Service", "accepts_gzip"]

logger = logging.getLogger(__name__)

DEFAULT_METRICS_PATH = "/metrics"

_ROBOTS_TXT = "User-agent: *\nDisallow: /\n"

_RUNNER_TAKES_SHUTDOWN_TIMEOUT = (
    "shutdown_timeout" in inspect.signature(aiohttp.web.AppRunner.__init__).parameters
)


class _DeferredInterrupt:
    """A SIGINT handler that raises KeyboardInterrupt between event-loop
    callbacks rather than in the middle of whatever task is running.

    With Python's default handler, a Ctrl-C that lands while an aiohttp
    request task runs is stored in that task and raised again from the next
    ``loop.run_until_complete(...)`` -- typically the application's cleanup
    call ``loop.run_until_complete(svc.stop())`` -- ending the program with a
    traceback. Scheduling the interrupt as a loop callback makes it leave
    ``run_until_complete``/``run_forever`` cleanly, with every task intact.

    It is installed by :meth:`Service.start` only in the main thread and only
    while the default handler is in place (so never over a handler set by the
    application or by ``asyncio.run``), and restored when the last running
    Service stops. Outside a running loop, or on a second Ctrl-C before the
    first was delivered, it raises at once like the default handler.
    """

    def __init__(self) -> None:
        self.users = 0
        self.pending = False

    def __call__(self, signum: int, frame: Optional[FrameType]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self.pending or loop.is_closed():
            self.pending = False
            raise KeyboardInterrupt
        self.pending = True
        loop.call_soon_threadsafe(self._interrupt)

    def _interrupt(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    def acquire(self) -> bool:
        """Install (or keep) the handler; True if the caller must release."""
        if threading.current_thread() is not threading.main_thread():
            return False
        current = signal.getsignal(signal.SIGINT)
        if current is not self:
            if current is not signal.default_int_handler:
                return False
            signal.signal(signal.SIGINT, self)
            self.users = 0
        self.users += 1
        return True

    def release(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and signal.getsignal(signal.SIGINT) is self:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.default_int_handler)


_deferred_interrupt = _DeferredInterrupt()


class Service:
    """A Prometheus metrics exporter (an aiohttp web server) that can be
    embedded in an asyncio application so that Prometheus can scrape it.

    Routes: the metrics URL (``/metrics`` by default; GET and HEAD), ``/``
    (a small page linking to the metrics, handy for health checks) and
    ``/robots.txt``. Everything else is answered with 404.

    The response format is negotiated from the request's ``Accept`` headers
    (text exposition format unless protobuf is asked for and available) and
    the body is gzip-compressed when the scraper sends
    ``Accept-Encoding: gzip``, as Prometheus does.

    :param registry: the :class:`Registry` whose metrics are exposed; the
      default registry if not given.
    :param loop: deprecated and ignored (accepted for code written against
      aioprometheus 17.x).

    :raises: TypeError if ``registry`` is not a :class:`Registry`.
    """

    def __init__(
        self,
        registry: Registry = REGISTRY,
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        if loop is not None:
            warnings.warn(
                "The 'loop' argument of Service is deprecated and ignored; "
                "the running event loop is used",
                DeprecationWarning,
                stacklevel=2,
            )
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry, got: {registry!r}")
        self.registry = registry
        self._app: Optional[aiohttp.web.Application] = None
        self._runner: Optional[aiohttp.web.AppRunner] = None
        self._site: Optional[aiohttp.web.TCPSite] = None
        self._https = False
        self._root_url = "/"
        self._metrics_url: str = DEFAULT_METRICS_PATH
        self._owns_sigint = False
        self._render_lock: Optional[asyncio.Lock] = None

    # ------------------------------------------------- 18.x-21.x registration

    def register(self, metric: Collector) -> None:
        """Deprecated: use ``service.registry.register(metric)``."""
        warnings.warn(
            "Service.register is deprecated; use Service.registry.register",
            DeprecationWarning,
            stacklevel=2,
        )
        self.registry.register(metric)

    def deregister(self, name: str) -> None:
        """Deprecated: use ``service.registry.deregister(name)``."""
        warnings.warn(
            "Service.deregister is deprecated; use Service.registry.deregister",
            DeprecationWarning,
            stacklevel=2,
        )
        self.registry.deregister(name)

    # ------------------------------------------------------------------ urls

    @property
    def running(self) -> bool:
        """True while the server is started."""
        return self._site is not None

    @property
    def base_url(self) -> str:
        """The base URL of the running service, e.g. ``http://127.0.0.1:8000``.

        :raises: RuntimeError if the server is not running.
        """
        if self._site is None or self._runner is None or not self._runner.addresses:
            raise RuntimeError(
                "No URL available, Prometheus metrics server is not running"
            )
        # IPv4 addresses are 2-tuples, IPv6 addresses 4-tuples. Binding all
        # interfaces on port 0 gives IPv4 and IPv6 sockets different ports:
        # report the IPv4 one if there is one.
        addresses = self._runner.addresses
        ipv4 = [a for a in addresses if len(a) == 2]
        host, port, *_ = (ipv4 or addresses)[0]
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self._https else "http"
        return f"{scheme}://{host}:{port}"

    @property
    def root_url(self) -> str:
        """The URL of the root page. :raises: RuntimeError if not running."""
        return f"{self.base_url}{self._root_url}"

    @property
    def metrics_url(self) -> str:
        """The URL of the metrics. :raises: RuntimeError if not running."""
        return f"{self.base_url}{self._metrics_url}"

    # ------------------------------------------------------------- lifecycle

    async def start(
        self,
        addr: str = "",
        port: int = 0,
        ssl: Optional[SSLContext] = None,
        metrics_url: str = DEFAULT_METRICS_PATH,
    ) -> None:
        """Start the HTTP(S) server.

        :param addr: the address to bind; the default ``""`` binds on all
          interfaces.
        :param port: the port to bind; the default 0 picks a free ephemeral
          port (see :attr:`base_url` for the one chosen).
        :param ssl: an SSLContext to serve HTTPS.
        :param metrics_url: the path the metrics are served on.

        :raises: ValueError for a bad ``metrics_url``; OSError if the address
          cannot be bound (the service is then left stopped).
        """
        if not isinstance(metrics_url, str) or not metrics_url.startswith("/"):
            raise ValueError(
                f"metrics_url must be a path starting with '/', got: {metrics_url!r}"
            )
        if self._site is not None:
            logger.warning("Prometheus metrics server is already running")
            return

        logger.debug(
            "Prometheus metrics server starting on %s:%s%s", addr, port, metrics_url
        )
        app = aiohttp.web.Application()
        # GET routes also answer HEAD. The metrics route is added first so
        # that it wins should it be "/" or "/robots.txt".
        app.router.add_get(metrics_url, self.handle_metrics)
        for path, handler in (
            (self._root_url, self.handle_root),
            ("/robots.txt", self.handle_robots),
        ):
            if path != metrics_url:
                app.router.add_get(path, handler)

        runner_kwargs: Dict[str, Any] = {}
        if _RUNNER_TAKES_SHUTDOWN_TIMEOUT:
            runner_kwargs["shutdown_timeout"] = 2.0
        runner = aiohttp.web.AppRunner(app, **runner_kwargs)
        await runner.setup()
        try:
            site = aiohttp.web.TCPSite(runner, addr, port, ssl_context=ssl)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise

        self._app = app
        self._runner = runner
        self._site = site
        self._https = ssl is not None
        self._render_lock = asyncio.Lock()
        self._owns_sigint = _deferred_interrupt.acquire()
        self._metrics_url = metrics_url
        logger.debug("Prometheus metrics server started on %s", self.metrics_url)

    async def stop(self) -> None:
        """Stop the server and free its port. Stopping a stopped service only
        logs a warning."""
        if self._site is None or self._runner is None:
            logger.warning("Prometheus metrics server is already stopped")
            return
        runner = self._runner
        self._site = None
        self._runner = None
        self._app = None
        try:
            await runner.cleanup()
        finally:
            if self._owns_sigint:
                self._owns_sigint = False
                _deferred_interrupt.release()
        logger.debug("Prometheus metrics server stopped")

    async def __aenter__(self) -> "Service":
        if self._site is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._site is not None:
            await self.stop()

    # -------------------------------------------------------------- handlers

    async def handle_metrics(
        self, request: aiohttp.web.Request
    ) -> aiohttp.web.Response:
        """Serve the registry, in the format negotiated from ``Accept``,
        gzip-compressed if the client accepts it."""
        accepts: List[str] = request.headers.getall(hdrs.ACCEPT, [])
        # Concurrent scrapes render one per event-loop iteration: the lock is
        # held across one yield, so the other scrapes of a burst wait for
        # later iterations and other tasks run in between. A burst of scrapes
        # of a big registry then delays the loop by about one render at a
        # time instead of all of them back to back.
        lock = self._render_lock
        if lock is None:
            lock = self._render_lock = asyncio.Lock()
        async with lock:
            body, render_headers = render(self.registry, accepts)
            await asyncio.sleep(0)
        headers = dict(render_headers)
        body = await negotiate_encoding(
            body, headers, request.headers.getall(hdrs.ACCEPT_ENCODING, [])
        )
        return aiohttp.web.Response(body=body, headers=headers)

    async def handle_root(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        """A small HTML page linking to the metrics (usable as a health check)."""
        return aiohttp.web.Response(
            content_type="text/html",
            text=(
                "<html><head><title>Metrics</title></head><body>"
                f"<a href='{self._metrics_url}'>metrics</a></body></html>"
            ),
        )

    async def handle_robots(self, request: aiohttp.web.Request) -> aiohttp.web.Response:
        """Ask robots not to index the service."""
        return aiohttp.web.Response(content_type="text/plain", text=_ROBOTS_TXT)
