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

from typing import Any, Awaitable, Callable, Dict, Mapping, Optional, Sequence, Tuple

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
        if self.starlette_app is None and scope_type in ("lifespan", "http"):
            self.starlette_app = scope.get("app")

        if scope_type not in ("http", "websocket"):
            await self.asgi_callable(scope, receive, send)
            return

        path = self.get_full_or_template_path(scope)
        if path in self.exclude_paths:
            await self.asgi_callable(scope, receive, send)
            return

        method = scope.get("method") or (
            "WEBSOCKET" if scope_type == "websocket" else ""
        )
        labels = {"method": str(method), "path": path}
        self.requests_counter.inc(labels)
        responded = False

        def count_response(status: Any) -> None:
            nonlocal responded
            responded = True
            code = str(status)
            status_labels = dict(labels)
            status_labels["status_code"] = (
                f"{code[0]}xx" if self.group_status_codes else code
            )
            self.status_codes_counter.inc(status_labels)
            self.responses_counter.inc(labels)

        async def wrapped_send(message: Message) -> None:
            if not responded:
                mtype = message.get("type")
                if mtype == "http.response.start":
                    count_response(message.get("status", 200))
                elif mtype == "websocket.accept":
                    count_response(101)
                elif mtype == "websocket.close":
                    count_response(403)  # closed before accepting: refused
            await send(message)

        try:
            await self.asgi_callable(scope, receive, wrapped_send)
        except Exception:
            self.exceptions_counter.inc(labels)
            if not responded:
                count_response(500)
            raise

    def get_full_or_template_path(self, scope: Scope) -> str:
        """The route template (Starlette/FastAPI, when ``use_template_urls``)
        or else the full request path (``root_path`` + ``path``)."""
        if self.use_template_urls and self.starlette_app is not None:
            template = _starlette_template(
                getattr(self.starlette_app, "routes", None), scope
            )
            if template is not None:
                return template
        return f"{scope.get('root_path', '')}{scope.get('path', '')}"


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
