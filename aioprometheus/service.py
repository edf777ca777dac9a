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
import concurrent.futures
import inspect
import logging
import threading
import warnings
from ssl import SSLContext
from typing import Any, Dict, Optional, Set

import aiohttp.web
from aiohttp import hdrs

from .collectors import REGISTRY, Collector, Registry
from .formats._python_path import compiled_runs
from .renderer import Encode, Prepare, accepts_gzip, lower_priority, scrape

__all__ = ["DEFAULT_METRICS_PATH", "Service", "accepts_gzip"]

logger = logging.getLogger(__name__)


DEFAULT_METRICS_PATH = "/metrics"

_ROBOTS_TXT = "User-agent: *\nDisallow: /\n"

# How long stopping waits for scrapes in flight. aiohttp >= 3.9 takes it on
# the runner (AppRunner passes it on to BaseRunner through **kwargs); older
# releases on the site.
_SHUTDOWN_TIMEOUT = 2.0
_RUNNER_TAKES_SHUTDOWN_TIMEOUT = (
    "shutdown_timeout" in inspect.signature(aiohttp.web.BaseRunner.__init__).parameters
)


class _ServerThread:
    """One Service's aiohttp server, on its own event loop in a daemon thread.

    Python runs signal handlers in the main thread only, so a Ctrl-C never
    lands inside the server's tasks. On the application's loop it could: the
    KeyboardInterrupt was then also stored in an aiohttp task, raised again by
    ``svc.stop()`` and logged as "Task exception was never retrieved". Here
    the application keeps Python's own Ctrl-C handling, untouched; the
    registry is still rendered on the application's loop (see
    :meth:`Service.handle_metrics`).
    """

    def __init__(
        self,
        app: aiohttp.web.Application,
        addr: str,
        port: int,
        ssl: Optional[SSLContext],
    ) -> None:
        timeout: Dict[str, Any] = {"shutdown_timeout": _SHUTDOWN_TIMEOUT}
        runner_kwargs = timeout if _RUNNER_TAKES_SHUTDOWN_TIMEOUT else {}
        self._site_kwargs = {} if _RUNNER_TAKES_SHUTDOWN_TIMEOUT else timeout
        self.runner = aiohttp.web.AppRunner(app, **runner_kwargs)
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.loop = asyncio.new_event_loop()
        # made by the server's own loop: an asyncio.Event built here would
        # bind to the application's loop on Python 3.9 and never wake
        self._stop_requested: asyncio.Future[None] = self.loop.create_future()
        threading.Thread(
            target=self._run,
            args=(addr, port, ssl),
            name="aioprometheus-service",
            daemon=True,
        ).start()

    def _run(self, addr: str, port: int, ssl: Optional[SSLContext]) -> None:
        lower_priority()  # it encodes scrapes: the application goes first
        try:
            self.loop.run_until_complete(self._serve(addr, port, ssl))
        except BaseException as exc:  # handed to the awaiting start()/stop()
            _settle(self.started, exc)
            _settle(self.stopped, exc)
        finally:
            self.loop.close()
        _settle(self.stopped, None)

    async def _serve(self, addr: str, port: int, ssl: Optional[SSLContext]) -> None:
        await self.runner.setup()
        try:
            site = aiohttp.web.TCPSite(
                self.runner, addr, port, ssl_context=ssl, **self._site_kwargs
            )
            await site.start()
        except BaseException:
            await self.runner.cleanup()
            raise
        _settle(self.started, None)
        await self._stop_requested
        await self.runner.cleanup()
        # what aiohttp gave up waiting for ends here, not "destroyed pending"
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self._request_stop)

    def _request_stop(self) -> None:
        if not self._stop_requested.done():
            self._stop_requested.set_result(None)


def _cut_short() -> aiohttp.web.HTTPServiceUnavailable:
    """The answer to a scrape cut short (an HTTPException: no error logged)."""
    return aiohttp.web.HTTPServiceUnavailable(text="scrape interrupted")


def _settle(
    future: "concurrent.futures.Future[None]", exc: Optional[BaseException]
) -> None:
    """Resolve `future` (with `exc` if given) unless it already is."""
    if not future.done():
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)


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
            raise TypeError(f"registry must be a Registry, got: {registry}")
        self.registry = registry
        self._server: Optional[_ServerThread] = None
        self._app_loop: Optional[asyncio.AbstractEventLoop] = None
        self._https = False
        self._root_url = "/"
        self._metrics_url: str = DEFAULT_METRICS_PATH
        # reads handed to the application's loop and not yet answered
        self._queued_reads: Set[concurrent.futures.Future[Any]] = set()

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
        return self._server is not None

    @property
    def base_url(self) -> str:
        """The base URL of the running service, e.g. ``http://127.0.0.1:8000``.

        :raises: RuntimeError if the server is not running.
        """
        addresses = self._server.runner.addresses if self._server else []
        if not addresses:
            raise RuntimeError(
                "No URL available, Prometheus metrics server is not running"
            )
        # IPv4 addresses are 2-tuples, IPv6 addresses 4-tuples. Binding all
        # interfaces on port 0 gives IPv4 and IPv6 sockets different ports:
        # report the IPv4 one if there is one.
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
        if self._server is not None:
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

        server = _ServerThread(app, addr, port, ssl)
        await asyncio.wrap_future(server.started)
        self._server = server
        self._app_loop = asyncio.get_running_loop()
        self._https = ssl is not None
        self._metrics_url = metrics_url
        logger.debug("Prometheus metrics server started on %s", self.metrics_url)

    async def stop(self) -> None:
        """Stop the server and free its port. Stopping a stopped service only
        logs a warning."""
        server = self._server
        if server is None:
            logger.warning("Prometheus metrics server is already stopped")
            return
        self._server = None
        # A read the application's loop never finished (a Ctrl-C can land
        # anywhere in it) would hold its scrape, and so the shutdown, for
        # seconds. Such reads run on the application's loop, where stop() is
        # awaited, so none is under way here.
        for read in list(self._queued_reads):
            if not read.done():
                read.set_exception(_cut_short())
        server.stop()
        await asyncio.wrap_future(server.stopped)
        logger.debug("Prometheus metrics server stopped")

    async def __aenter__(self) -> "Service":
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._server is not None:
            await self.stop()

    # -------------------------------------------------------------- handlers

    async def handle_metrics(
        self, request: aiohttp.web.Request
    ) -> aiohttp.web.Response:
        """Serve the registry, in the format negotiated from ``Accept``,
        gzip-compressed if the client accepts it.

        A registry of compiled metrics only is copied and encoded right here,
        in the server's thread: the copy holds the GIL for a moment (about
        0.1 ms per 10k series), and the encoding runs without it. A registry
        that runs the application's Python code when read (collectors
        computing values at scrape time, refresh hooks such as the runtime
        collectors') is read on the application's loop, between its
        callbacks, as when the server ran there; the encoding then comes back
        here.
        """
        server = self._server
        on_server_thread = (
            server is not None and asyncio.get_running_loop() is server.loop
        )
        body, headers = await scrape(
            self.registry,
            request.headers.getall(hdrs.ACCEPT, []),
            request.headers.getall(hdrs.ACCEPT_ENCODING, []),
            # elsewhere (this handler mounted in the application's own
            # server): read here, encode in a render thread, as any handler
            read=self._read if on_server_thread else None,
        )
        return aiohttp.web.Response(body=body, headers=headers)

    async def _read(self, prepare: Prepare, registry: Registry) -> Encode:
        """``prepare(registry)``: here if reading the registry runs no code
        of the application (or the service has stopped), else in a plain
        callback on the application's loop, so that a Ctrl-C landing in it
        is raised in the application's loop as ever and stored in no
        task."""
        app_loop = self._app_loop
        planned = compiled_runs(registry)
        if planned is not None or app_loop is None:
            return prepare(registry, planned)
        done: concurrent.futures.Future[Encode] = concurrent.futures.Future()

        def read_now() -> None:
            if done.done() or not done.set_running_or_notify_cancel():
                return  # the scrape went away meanwhile
            try:
                result = prepare(registry, None)
            except Exception as exc:
                done.set_exception(exc)
                return
            except BaseException:
                # a Ctrl-C belongs to the application: raised in its loop;
                # the scrape is answered 503 (no error logged for it)
                done.set_exception(_cut_short())
                raise
            done.set_result(result)

        self._queued_reads.add(done)
        done.add_done_callback(self._queued_reads.discard)
        app_loop.call_soon_threadsafe(read_now)
        return await asyncio.wrap_future(done)

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
