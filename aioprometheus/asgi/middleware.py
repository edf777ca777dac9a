"""
ASGI middleware that counts requests, responses, exceptions and status codes
of an ASGI application (Starlette, FastAPI, Quart or any ASGI callable).

Metric names and labels are those of aioprometheus 23.12:

- ``requests_total_counter{method, path}``
- ``responses_total_counter{method, path}``
- ``exceptions_total_counter{method, path}``
- ``status_codes_counter{method, path, status_code}``

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
)

from ..collectors import REGISTRY, Counter, Registry

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

# starlette.routing.Match.FULL
_MATCH_FULL = 2

# Bound series kept per (method, path, outcome); a full cache starts again
# (the method and, off templates, the path come from the client).
SERIES_CACHE_SIZE = 1024

# the outcome of an exception (an int is a response's status code, None a
# request without a response)
_FAILED = "exception"


class _Exchange:
    """One request's state: its send wrapper counts when the response starts.
    Slots, not a closure: one allocation instead of a function and its cells."""

    __slots__ = ("middleware", "scope", "send", "path", "root_path", "counted")

    middleware: "MetricsMiddleware"
    scope: Scope
    send: Send
    path: str
    root_path: str
    counted: bool

    def send_counting(self, message: Message) -> Awaitable[None]:
        # A plain method handing back send's awaitable: no extra coroutine.
        if not self.counted:
            message_type = message.get("type")
            if message_type == "http.response.start":
                self.count(message.get("status", 200), False)
            elif message_type == "websocket.accept":
                self.count(101, False)
            elif message_type == "websocket.close":
                self.count(403, False)  # closed before accepting: refused
        return self.send(message)

    def count(self, status: Any, failed: bool) -> None:
        """Count the request once the router has chosen its route (so the
        template is read, not searched for): with a ``status``, the request,
        its response and status code; ``failed`` adds the exception, and
        without a status it counts only that (the response was counted) or,
        not failed, only the request (no response was sent)."""
        self.counted = True
        middleware = self.middleware
        scope = self.scope
        routed = scope.get("route")
        # the map is empty unless templates apply: a hit is the template
        known = middleware._route_templates.get(id(routed))
        if known is not None and known[0] is routed and known[1] is not None:
            template = known[1]
        elif routed is None and scope.get("endpoint") is not None:
            # Starlette before scope["route"]: one endpoint may serve several
            # routes, so the route walk decides (as 23.12 did)
            template = middleware.get_full_or_template_path(
                {**scope, "path": self.path, "root_path": self.root_path}
            )
        else:
            template = middleware._path_label(scope, self.path, self.root_path, routed)
        if not failed:
            outcomes: Tuple[Any, ...] = (status,)
        elif status is None:  # after the response started: counted then
            outcomes = (_FAILED,)
        else:  # before any response: the request, a 500 and the exception
            outcomes = (status, _FAILED)
        method = scope.get("method")
        for outcome in outcomes:
            series_key = (method, template, outcome)
            bound = middleware._series.get(series_key)
            if bound is None:
                bound = middleware._bind(series_key, scope.get("type"))
            for series in bound:
                series.inc()


class MetricsMiddleware:
    """Prometheus metrics for an ASGI application.

    :param app: the next ASGI callable (the application or another middleware).
    :param registry: the registry the counters are registered in (the default
      registry if None or not given).
    :param exclude_paths: paths (compared with the template path when
      ``use_template_urls`` applies, else the full path) not counted.
    :param use_template_urls: report the route template (``/users/{user_id}``)
      instead of the actual path for Starlette/FastAPI applications.
    :param group_status_codes: report ``2xx``, ``4xx``, ... instead of the
      exact status code.
    :param const_labels: constant labels added to every counter.

    The counters are created lazily on the first call, and a counter of the
    same name already in the registry (for example from a previous instance,
    as Starlette rebuilds its middleware stack) is reused.

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
    kept in a cache of ``SERIES_CACHE_SIZE`` entries, emptied when full.
    """

    def __init__(
        self,
        app: ASGICallable,
        registry: Optional[Registry] = REGISTRY,
        exclude_paths: Optional[Sequence[str]] = EXCLUDE_PATHS,
        use_template_urls: bool = True,
        group_status_codes: bool = False,
        const_labels: Optional[Mapping[str, str]] = None,
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
        # The Starlette/FastAPI app, for route templates; taken from the scope.
        self.starlette_app: Any = None
        self.metrics_created = False
        self._series: Dict[Tuple[Any, str, Any], Tuple[Any, ...]] = {}
        # id(route or endpoint) -> (it, its template or None): the app's routes
        self._route_templates: Dict[int, Tuple[Any, Optional[str]]] = {}

    requests_counter: Counter
    responses_counter: Counter
    exceptions_counter: Counter
    status_codes_counter: Counter

    def create_metrics(self) -> None:
        """Create (or find in the registry) the middleware's counters."""
        self.requests_counter = self._counter(
            "requests_total_counter", "Total number of requests received"
        )
        self.responses_counter = self._counter(
            "responses_total_counter", "Total number of responses sent"
        )
        self.exceptions_counter = self._counter(
            "exceptions_total_counter",
            "Total number of requested which generated an exception",
        )
        self.status_codes_counter = self._counter(
            "status_codes_counter", "Total number of response status codes"
        )
        self.metrics_created = True

    def _counter(self, name: str, doc: str) -> Counter:
        try:
            existing = self.registry.get(name)
        except KeyError:
            existing = None
        if isinstance(existing, Counter) and (existing.const_labels or None) == (
            self.const_labels or None
        ):
            return existing
        return Counter(
            name, doc, const_labels=self.const_labels, registry=self.registry
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.metrics_created:
            self.create_metrics()
        scope_type = scope.get("type")
        if scope_type != "http" and scope_type != "websocket":
            if self.starlette_app is None and scope_type == "lifespan":
                self.starlette_app = scope.get("app")
            await self.asgi_callable(scope, receive, send)
            return
        if self.starlette_app is None and scope_type == "http":
            self.starlette_app = scope.get("app")

        exchange = _Exchange()
        exchange.middleware = self
        exchange.scope = scope
        exchange.send = send
        # The router may rewrite these (a Mount extends root_path): keep the
        # request's own for the raw path label and the fallback route walk.
        exchange.path = scope.get("path", "")
        exchange.root_path = scope.get("root_path", "")
        exchange.counted = False
        try:
            await self.asgi_callable(scope, receive, exchange.send_counting)
        except Exception:
            exchange.count(None if exchange.counted else 500, True)
            raise
        finally:
            if not exchange.counted:  # returned or cancelled without a response
                exchange.count(None, False)

    def _bind(
        self, series_key: Tuple[Any, str, Any], scope_type: Any
    ) -> Tuple[Any, ...]:
        """The series one outcome of a (method, path) increments, looked up
        once and kept bound (none for an excluded path): for a response, the
        request, response and status code; for a request without response,
        the request; for an exception, the exception."""
        method, template, outcome = series_key
        bound: Tuple[Any, ...] = ()
        if template not in self.exclude_paths:
            if method is None:
                method = "WEBSOCKET" if scope_type == "websocket" else ""
            labels = {"method": str(method), "path": template}
            if outcome is None:
                bound = (self.requests_counter.labels(labels),)
            elif outcome is _FAILED:
                bound = (self.exceptions_counter.labels(labels),)
            else:
                code = str(outcome)
                status_labels = dict(labels)
                status_labels["status_code"] = (
                    f"{code[0]}xx" if self.group_status_codes else code
                )
                bound = (
                    self.requests_counter.labels(labels),
                    self.responses_counter.labels(labels),
                    self.status_codes_counter.labels(status_labels),
                )
        if len(self._series) >= SERIES_CACHE_SIZE:
            self._series.clear()
        self._series[series_key] = bound
        return bound

    def _path_label(self, scope: Scope, path: str, root_path: str, routed: Any) -> str:
        """The template of the route the router chose (``routed``: its
        scope["route"]) when ``use_template_urls`` applies,
        else the full request path (``root_path`` + ``path``)."""
        app = self.starlette_app
        if self.use_template_urls and app is not None:
            if routed is not None:
                known = self._route_templates.get(id(routed))
                if known is None or known[0] is not routed:
                    known = self._learn_route(routed)
                if known[1] is not None:
                    return known[1]
            elif "router" in scope:
                # The router ran and matched nothing (a 404, a slash
                # redirect): the walk would find nothing either.
                return f"{root_path}{path}"
            template = _starlette_template(
                getattr(app, "routes", None),
                {**scope, "path": path, "root_path": root_path},
            )
            if template is not None:
                return template
        return f"{root_path}{path}"

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
