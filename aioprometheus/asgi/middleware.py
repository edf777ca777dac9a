"""
ASGI middleware that counts requests, responses, exceptions and status codes
of an ASGI application (Starlette, FastAPI, Quart or any ASGI callable), and
optionally times them.

Metric names and labels are those of aioprometheus 23.12:

- ``requests_total_counter{method, path}``
- ``responses_total_counter{method, path}``
- ``exceptions_total_counter{method, path}``
- ``status_codes_counter{method, path, status_code}``

With ``duration_histogram``, also
``http_request_duration_seconds{method, path, status_code}``.

This module imports no web framework.
"""

from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .._core import Exchange, RouteTable, open_exchange
from ..collectors import REGISTRY, Collector, Counter, Histogram, Registry

Scope = Dict[str, Any]
Message = Dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGICallable = Callable[[Scope, Receive, Send], Awaitable[None]]

EXCLUDE_PATHS: Tuple[str, ...] = (
    "/metrics",
    "/metrics/",
    "/docs",
    "/openapi.json",
    "/docs/oauth2-redirect",
    "/redoc",
    "/favicon.ico",
)

DURATION_HISTOGRAM = "http_request_duration_seconds"
# the duration histogram also keeps native buckets (exposed in protobuf, for
# Prometheus' native histograms) growing by at most this factor (schema 3)
DURATION_NATIVE_FACTOR = 1.1

# starlette.routing.Match.FULL
_MATCH_FULL = 2

# Entries kept in each of the two series caches, per (method, path, outcome)
# and per (route or unrouted path, method, status); a full cache starts
# again (the method and, off templates, the path come from the client).
SERIES_CACHE_SIZE = 1024

# the outcome of an exception (an int is a response's status code, None a
# request without a response)
_FAILED = "exception"


def _checked_buckets(buckets: Sequence[float]) -> Tuple[float, ...]:
    """The bucket bounds a Histogram would have (+Inf last), checked by the
    Histogram itself on an instance never initialised or registered, so that
    bad buckets fail at construction rather than on the first request."""
    unregistered = Histogram.__new__(Histogram)
    unregistered._set_buckets(buckets)
    return tuple(unregistered.upper_bounds)


def _bound(metric: Collector, labels: Dict[str, str]) -> Any:
    """The metric's series of these labels (a Counter's has ``inc``, a
    Histogram's ``observe``)."""
    return metric.labels(labels)


def _count_each(series: Tuple[Any, ...]) -> None:
    """inc() each series bound (None: an excluded path's)."""
    for bound in series:
        if bound is not None:
            bound.inc()


class MetricsMiddleware:
    """Prometheus metrics for an ASGI application.

    :param app: the next ASGI callable (the application or another middleware).
    :param registry: the registry the metrics are registered in (the default
      registry if None or not given).
    :param exclude_paths: paths (compared with the template path when
      ``use_template_urls`` applies, else the full path) not counted.
    :param use_template_urls: report the route template (``/users/{user_id}``)
      instead of the actual path for Starlette/FastAPI applications.
    :param group_status_codes: report ``2xx``, ``4xx``, ... instead of the
      exact status code.
    :param const_labels: constant labels added to every metric.
    :param duration_histogram: also time each HTTP request into the
      histogram ``http_request_duration_seconds{method, path, status_code}``:
      True for ``Histogram.DEFAULT_BUCKETS``, or the bucket upper bounds;
      it keeps native buckets too (``DURATION_NATIVE_FACTOR``), which the
      protobuf format exposes.  Off by default.

    The metrics are created lazily on the first call, and a metric of the
    same name, kind and const labels (and buckets) already in the registry
    (for example from a previous instance, as Starlette rebuilds its
    middleware stack) is reused.

    A request is counted once the router has chosen its route: when the
    response starts (a websocket is accepted or refused), when the app raises
    (status 500 if no response started; the exception is re-raised), or when
    it returns without a response (the request alone).  The template is then
    read from the route the router left in the scope (``scope["route"]``,
    else ``scope["endpoint"]``), through a map of the app's route tree built
    once (mounts and FastAPI ``include_router`` prefixes included), instead
    of matching every route again.  A route reachable under two templates, or
    a request the router did not see, falls back to matching the request's
    own path against the routes, as 23.12 did before calling the app.  A path
    no route matches (a 404) is reported as is, as in 23.12.  The series each
    (method, path, outcome) increments are bound once (``metric.labels``) and
    kept in a cache of ``SERIES_CACHE_SIZE`` entries, emptied when full; a
    second cache of that size keys a response's series by its route (or, for
    a request the router matched to no route, its path), method and status,
    for the compiled send wrapper handed to the app (``_core.Exchange``),
    which counts such a response without running Python code.

    An HTTP request's duration runs from its arrival here to the response's
    last body message (background tasks after it are not counted), else to
    the app's return or exception; a request without a response, and a
    websocket, are not timed.
    """

    def __init__(
        self,
        app: ASGICallable,
        registry: Optional[Registry] = REGISTRY,
        exclude_paths: Optional[Sequence[str]] = EXCLUDE_PATHS,
        use_template_urls: bool = True,
        group_status_codes: bool = False,
        const_labels: Optional[Mapping[str, str]] = None,
        duration_histogram: Union[bool, Sequence[float]] = False,
    ) -> None:
        if registry is None:
            registry = REGISTRY
        if not isinstance(registry, Registry):
            raise TypeError(f"registry must be a Registry, got: {type(registry)}")
        self.asgi_callable = app
        self.registry = registry
        self.exclude_paths = frozenset(exclude_paths) if exclude_paths else frozenset()
        self.use_template_urls = use_template_urls
        self.group_status_codes = group_status_codes
        self.const_labels = dict(const_labels) if const_labels else None
        # the duration histogram's bucket bounds (+Inf last), None if untimed
        self.duration_buckets: Optional[Tuple[float, ...]] = None
        if duration_histogram is True:
            duration_histogram = Histogram.DEFAULT_BUCKETS
        if duration_histogram is not False:
            self.duration_buckets = _checked_buckets(duration_histogram)
        self._timed = self.duration_buckets is not None
        # The Starlette/FastAPI app, for route templates; taken from the scope.
        self.starlette_app: Any = None
        self.metrics_created = False
        # the metrics exist and an HTTP scope was seen: no setup left
        self._ready = False
        self._series: Dict[Tuple[Any, str, Any], Tuple[Any, ...]] = {}
        # (route or an unrouted request's full path, method, status) -> its
        # response's series: the exchange's table, looked up in C
        self._route_series = RouteTable(SERIES_CACHE_SIZE)
        # id(route or endpoint) -> (it, its template or None): the app's routes
        self._route_templates: Dict[int, Tuple[Any, Optional[str]]] = {}

    requests_counter: Counter
    responses_counter: Counter
    exceptions_counter: Counter
    status_codes_counter: Counter
    duration_histogram: Optional[Histogram] = None

    def create_metrics(self) -> None:
        """Create (or find in the registry) the middleware's metrics."""
        self.requests_counter = self._metric(
            Counter, "requests_total_counter", "Total number of requests received"
        )
        self.responses_counter = self._metric(
            Counter, "responses_total_counter", "Total number of responses sent"
        )
        self.exceptions_counter = self._metric(
            Counter,
            "exceptions_total_counter",
            "Total number of requested which generated an exception",
        )
        self.status_codes_counter = self._metric(
            Counter, "status_codes_counter", "Total number of response status codes"
        )
        if self.duration_buckets is not None:
            self.duration_histogram = self._metric(
                Histogram,
                DURATION_HISTOGRAM,
                "HTTP request duration in seconds, from the request's arrival "
                "to its response's last body message",
                buckets=self.duration_buckets,
                native_histogram_bucket_factor=DURATION_NATIVE_FACTOR,
            )
        self.metrics_created = True

    def _metric(self, kind: Any, name: str, doc: str, **options: Any) -> Any:
        """The registry's metric of this name if it is of this kind, const
        labels and buckets, else a new one (an error if the name is taken)."""
        try:
            existing: Any = self.registry.get(name)
        except KeyError:
            existing = None
        if (
            isinstance(existing, kind)
            and (existing.const_labels or None) == (self.const_labels or None)
            and (
                "buckets" not in options
                or tuple(existing.upper_bounds) == options["buckets"]
            )
        ):
            return existing
        return kind(
            name, doc, const_labels=self.const_labels, registry=self.registry, **options
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._ready:
            if not self._prepare(scope):
                await self.asgi_callable(scope, receive, send)
                return
        # The exchange (aioprometheus/_kernels/exchange.pxi) is the send the
        # app calls: it counts a response on a route already seen in C, and
        # hands anything else to _on_message.
        exchange = open_exchange(self, scope, send, self._route_series, self._timed)
        try:
            await self.asgi_callable(scope, receive, exchange)
        except Exception:
            self._count(exchange, 500 if exchange.state is False else None, True)
            raise
        finally:
            if exchange.state is not True:
                self._settle(exchange)

    def _on_message(self, exchange: Exchange, message: Message) -> None:
        """What the exchange does not count in C: a response start not in
        the route table (or not of exact types), a websocket's accept or
        refusal, a timed body message it could not read."""
        if exchange.state is True:
            return
        # The message is read first: its own code may re-enter the exchange.
        kind = message["type"]
        if kind == "http.response.start" or kind == "websocket.http.response.start":
            status = message["status"]
        elif kind == "websocket.accept":
            status = 101
        elif kind == "websocket.close":
            status = 403  # closed before accepting: refused
        else:
            status = None
        last = kind == "http.response.body" and not message.get("more_body", False)
        state = exchange.state
        if state is False:
            if status is not None:
                self._count(exchange, status, False)
        elif state is not True and last:  # timed: the duration ends with the body
            exchange.state = True
            state.observe(exchange.elapsed())

    def _count(self, exchange: Exchange, status: Any, failed: bool) -> None:
        """Count the request once the router has chosen its route (so the
        template is read, not searched for): with a ``status``, the request,
        its response and status code; ``failed`` adds the exception, and
        without a status it counts only that (the response was counted) or,
        not failed, only the request (no response was sent).  An HTTP
        response whose label the exchange can key (see ``_path_label``), of
        an exact str method and int status, is remembered for its C path."""
        if exchange.state is False:
            exchange.state = True
        scope = exchange.scope
        routed = scope.get("route")
        template, cached_as = self._path_label(
            scope, exchange.path, exchange.root_path, routed
        )
        method = scope.get("method")
        scope_type = scope.get("type")
        if status is not None:
            series_key = (method, template, status)
            series = self._series.get(series_key) or self._series_for(
                series_key, scope_type
            )
            if cached_as is not None and scope_type == "http":
                # kept only for an exact str method and int status
                self._route_series.remember(
                    cached_as, routed is not None, method, status, series
                )
            _count_each(series[:3])
            exchange.state = series[3]
        if failed:
            _count_each(self._series_for((method, template, _FAILED), scope_type))
        elif status is None:
            _count_each(self._series_for((method, template, None), scope_type))

    def _settle(self, exchange: Exchange) -> None:
        """After the app: observe a duration whose last body message was not
        seen (the exchange observes it itself otherwise); count a request
        that got no response."""
        state = exchange.state
        if state is False:  # returned or cancelled without a response
            self._count(exchange, None, False)
        elif state is not True:
            exchange.state = True
            state.observe(exchange.elapsed())

    def _prepare(self, scope: Scope) -> bool:
        """The first calls' setup (the metrics created, the Starlette app
        taken from a lifespan or HTTP scope); whether the scope is counted."""
        if not self.metrics_created:
            self.create_metrics()
        scope_type = scope["type"]
        if scope_type == "http" or scope_type == "lifespan":
            if self.starlette_app is None:
                self.starlette_app = scope.get("app")
            self._ready = scope_type == "http"
        return scope_type == "http" or scope_type == "websocket"

    def _series_for(
        self, series_key: Tuple[Any, str, Any], scope_type: Any
    ) -> Tuple[Any, ...]:
        """The cached or newly bound series of one (method, path, outcome)."""
        bound = self._series.get(series_key)
        if bound is None:
            bound = self._bind(series_key, scope_type)
            if len(self._series) >= SERIES_CACHE_SIZE:
                self._series.clear()
            self._series[series_key] = bound
        return bound

    def _bind(
        self, series_key: Tuple[Any, str, Any], scope_type: Any
    ) -> Tuple[Any, ...]:
        """The increments one outcome of a (method, path) makes, looked up
        once (None for an excluded path): for a response, those of the
        request, response and status code, then the duration histogram's
        (True when untimed, for a websocket, or excluded); for a request
        without response, the request's; for an exception, the
        exception's."""
        method, template, outcome = series_key
        excluded = template in self.exclude_paths
        labels = self._labels(method, template, scope_type)
        if outcome is None or outcome is _FAILED:
            if excluded:
                return (None,)
            counter = (
                self.requests_counter if outcome is None else self.exceptions_counter
            )
            return (_bound(counter, labels),)
        if excluded:
            return (None, None, None, True)
        code = str(outcome)
        status_labels = dict(labels)
        status_labels["status_code"] = (
            f"{code[0]}xx" if self.group_status_codes else code
        )
        histogram = self.duration_histogram
        return (
            _bound(self.requests_counter, labels),
            _bound(self.responses_counter, labels),
            _bound(self.status_codes_counter, status_labels),
            _bound(histogram, status_labels)
            if histogram is not None and scope_type == "http"
            else True,
        )

    @staticmethod
    def _labels(method: Any, template: str, scope_type: Any) -> Dict[str, str]:
        if method is None:
            method = "WEBSOCKET" if scope_type == "websocket" else ""
        return {"method": str(method), "path": template}

    def _path_label(
        self, scope: Scope, path: str, root_path: str, routed: Any
    ) -> Tuple[str, Any]:
        """The path label: the template of the route the router chose
        (``routed``: its scope["route"]) when ``use_template_urls`` applies,
        else the full request path (``root_path`` + ``path``).  Then what
        the exchange keys the label by in its route table, None if it cannot
        (only a route walk can tell): the route for its template, the full
        path for a request the router matched to no route."""
        app = self.starlette_app
        if self.use_template_urls and app is not None:
            if routed is not None:
                known = self._route_templates.get(id(routed))
                if known is None or known[0] is not routed:
                    known = self._learn_route(routed)
                if known[1] is not None:
                    return known[1], routed
            elif scope.get("endpoint") is not None:
                # Starlette before scope["route"]: one endpoint may serve
                # several routes, so the route walk decides (as 23.12 did)
                return self.get_full_or_template_path(
                    {**scope, "path": path, "root_path": root_path}
                ), None
            elif "router" in scope:
                # The router ran and matched nothing (a 404, a slash
                # redirect): the walk would find nothing either.
                full_path = f"{root_path}{path}"
                return full_path, full_path
            template = _starlette_template(
                getattr(app, "routes", None),
                {**scope, "path": path, "root_path": root_path},
            )
            if template is not None:
                return template, None
        return f"{root_path}{path}", None

    def _learn_route(self, routed: Any) -> Tuple[Any, Optional[str]]:
        """Re-read the app's route tree for a route (or endpoint) not seen
        yet; one found nowhere, or under two templates, maps to None (the
        route walk decides each time)."""
        templates = _route_templates(getattr(self.starlette_app, "routes", None))
        known = templates.get(id(routed))
        if known is None or known[0] is not routed:
            known = (routed, None)
            templates[id(routed)] = known
        self._route_templates = templates
        return known

    def get_full_or_template_path(self, scope: Scope) -> str:
        """The route template (Starlette/FastAPI, when ``use_template_urls``)
        or else the full request path (``root_path`` + ``path``), found by
        matching ``scope`` against the app's routes (as 23.12)."""
        if self.use_template_urls and self.starlette_app is not None:
            template = _starlette_template(
                getattr(self.starlette_app, "routes", None), scope
            )
            if template is not None:
                return template
        return f"{scope.get('root_path', '')}{scope.get('path', '')}"


def _route_templates(
    routes: Any, prefix: str = "", depth: int = 0
) -> Dict[int, Tuple[Any, Optional[str]]]:
    """Map each route in the tree (and each endpoint or mounted app) by id to
    itself and its template, the paths from the top route down to it; None
    when it is reachable under two templates (only a route walk can tell)."""
    found: Dict[int, Tuple[Any, Optional[str]]] = {}

    def note(thing: Any, template: Optional[str]) -> None:
        if thing is not None:
            known = found.get(id(thing))
            if known is not None and known[1] != template:
                template = None
            found[id(thing)] = (thing, template)

    if not routes or depth > 8:
        return found
    for route in routes:
        path = getattr(route, "path", None)
        if path is not None:
            template = prefix + str(path)
            note(route, template)
            # the router's scope["endpoint"]: a route's endpoint, a mount's app
            endpoint = getattr(route, "endpoint", None)
            note(
                getattr(route, "app", None) if endpoint is None else endpoint, template
            )
            children = getattr(route, "routes", None)
        else:
            # FastAPI's include_router (0.16x) keeps the router and a prefix
            included = getattr(getattr(route, "include_context", None), "prefix", None)
            if not isinstance(included, str):
                continue
            template = prefix + included
            children = getattr(getattr(route, "original_router", None), "routes", None)
        for thing, inner in _route_templates(children, template, depth + 1).values():
            note(thing, inner)
    return found


def _starlette_template(routes: Any, scope: Scope, depth: int = 0) -> Optional[str]:
    """Find the template path of the route that fully matches ``scope``,
    descending into mounted sub-applications and routers."""
    if not routes or depth > 8:
        return None
    for route in routes:
        matches = getattr(route, "matches", None)
        if matches is None:
            continue
        try:
            match, child_scope = matches(scope)
        except Exception:  # a route that cannot judge this scope
            continue
        if getattr(match, "value", match) != _MATCH_FULL:
            continue
        path = getattr(route, "path", None)
        if path is None:
            return None
        child_routes = getattr(route, "routes", None)
        if child_routes:  # a Mount: look for the route inside it
            sub_scope = {**scope, **child_scope}
            inner = _starlette_template(child_routes, sub_scope, depth + 1)
            if inner is not None:
                return f"{path}{inner}"
        return str(path)
    return None
