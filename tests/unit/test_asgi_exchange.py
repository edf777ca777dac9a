"""The middleware's compiled per-request exchange (_kernels/exchange.pxi):
its C path against a plain-Python model of what the middleware counts, and
hostile messages, statuses, routes, sends and scopes, which must either take
the Python path or count exactly as it would, and never crash. No web
framework: a small router-like app leaves scope["route"] and
scope["router"] as Starlette's does (these tests run under AddressSanitizer
in CI, where no framework is installed)."""

import asyncio
from collections import Counter as Tally

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from registry_views import label_key as key
from registry_views import series_values as values

from aioprometheus import _core
from aioprometheus.asgi.middleware import EXCLUDE_PATHS, MetricsMiddleware
from aioprometheus.collectors import Registry

NAMES = (
    "requests_total_counter",
    "responses_total_counter",
    "status_codes_counter",
)


class Route:
    """What a Starlette router leaves in scope["route"]."""

    def __init__(self, path):
        self.path = path


class Router:
    """A raw ASGI app that routes by exact path, as Starlette leaves the
    scope, then answers with `respond(scope, send)`."""

    def __init__(self, respond, templates=("/users/{id}", "/items/{id}", "/metrics")):
        self.routes = [Route(t) for t in templates]
        self.by_path = {r.path.replace("{id}", "1"): r for r in self.routes}
        self.respond = respond

    async def __call__(self, scope, receive, send):
        scope["router"] = self
        route = self.by_path.get(scope["path"])
        if route is not None:
            scope["route"] = route
        await self.respond(scope, send)


def responder(status=200, start=dict, body=dict):
    async def respond(scope, send):
        await send(start(type="http.response.start", status=status, headers=[]))
        await send(body(type="http.response.body", body=b"ok"))

    return respond


async def call(mw, router, path="/users/1", method="GET", scope=None):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    full = {"type": "http", "path": path, "root_path": "", "method": method}
    full["app"] = router
    full.update(scope or {})
    await mw(full, receive, send)
    return sent


def run(mw, router, *args, **kwargs):
    return asyncio.run(call(mw, router, *args, **kwargs))


def totals(registry):
    return {name: sum(values(registry, name).values()) for name in NAMES}


class Str(str):
    pass


class Int(int):
    pass


class Message(dict):
    pass


TEMPLATE = {
    "/users/1": "/users/{id}",
    "/items/1": "/items/{id}",
    "/metrics": "/metrics",
}


@settings(max_examples=60, deadline=None)
@given(
    timed=st.booleans(),
    requests=st.lists(
        st.tuples(
            st.sampled_from(["/users/1", "/items/1", "/nowhere", "/metrics"]),
            st.sampled_from(["GET", "POST", Str("GET")]),
            st.sampled_from([200, 404, 503, Int(200), Int(201)]),
            st.sampled_from([dict, Message]),
        ),
        max_size=12,
    ),
)
def test_counts_as_the_model(timed, requests):
    """Whichever path each request takes (C for exact types, else Python),
    the counts are those of a plain model."""
    registry = Registry()
    router = Router(None)
    mw = MetricsMiddleware(router, registry=registry, duration_histogram=timed)
    model = Tally()
    for path, method, status, message in requests:
        router.respond = responder(status, start=message, body=message)
        sent = run(mw, router, path, method)
        assert [m["type"] for m in sent] == [
            "http.response.start",
            "http.response.body",
        ]
        label = TEMPLATE.get(path, path)
        if label not in EXCLUDE_PATHS:
            model[(str(method), label, str(status))] += 1
    expected = {
        key(method=m, path=p, status_code=s): n for (m, p, s), n in model.items()
    }
    assert values(registry, "status_codes_counter") == expected
    by_path = Tally()
    for (m, p, _), n in model.items():
        by_path[key(method=m, path=p)] += n
    assert values(registry, "requests_total_counter") == dict(by_path)
    assert values(registry, "responses_total_counter") == dict(by_path)
    if timed:
        counts = {k: v["count"] for k, v in values(registry, DURATION).items()}
        assert counts == expected
    # the C path's table holds routes or exact str paths, exact str methods
    # and int statuses only
    for head, method, status in mw._route_series.keys():
        assert type(head) in (Route, str) and type(method) is str
        assert type(status) is int


DURATION = "http_request_duration_seconds"


def test_c_path_counts_without_the_python_fallback(monkeypatch):
    """After a route's first response, its requests never reach Python."""
    registry = Registry()
    router = Router(responder(200))
    mw = MetricsMiddleware(router, registry=registry, duration_histogram=True)
    run(mw, router, "/users/1")
    run(mw, router, "/nowhere")
    fallbacks = []
    original = MetricsMiddleware._on_message
    monkeypatch.setattr(
        MetricsMiddleware,
        "_on_message",
        lambda self, ex, m: fallbacks.append(m) or original(self, ex, m),
    )
    for _ in range(3):
        run(mw, router, "/users/1")
        run(mw, router, "/nowhere")
    assert fallbacks == []
    assert values(registry, "status_codes_counter") == {
        key(method="GET", path="/users/{id}", status_code="200"): 4,
        key(method="GET", path="/nowhere", status_code="200"): 4,
    }
    durations = values(registry, DURATION)
    assert [v["count"] for v in durations.values()] == [4, 4]
    assert all(0 < v["sum"] < 5 for v in durations.values())


def test_status_with_reentrant_eq_and_hash_takes_python_path():
    """An int subclass whose __eq__/__hash__ clear the metrics is never a C
    cache key; the request is counted once, and later ones still count."""
    registry = Registry()
    router = Router(responder(200))
    mw = MetricsMiddleware(router, registry=registry)
    run(mw, router)

    class Status(int):
        def __eq__(self, other):
            for name in NAMES:
                registry.get(name)._clear()
            return int(self) == other

        def __hash__(self):
            for name in NAMES:
                registry.get(name)._clear()
            return int.__hash__(self)

    router.respond = responder(Status(200))
    run(mw, router)
    assert all(type(k[2]) is int for k in mw._route_series.keys())
    before = totals(registry)
    router.respond = responder(200)
    run(mw, router)
    assert totals(registry) == {n: before[n] + 1 for n in NAMES}


def test_message_dict_subclass_reentering_the_exchange_counts_once():
    """A start message whose .get re-sends it through the exchange: counted
    once (the Python path sees the response already counted)."""
    registry = Registry()
    router = Router(None)
    mw = MetricsMiddleware(router, registry=registry)

    async def respond(scope, send):
        class Start(dict):
            def get(self, *args):
                if not reentered:
                    reentered.append(1)
                    send({"type": "http.response.start", "status": 200}).close()
                return dict.get(self, *args)

            def __getitem__(self, name):
                return self.get(name)

        reentered = []
        await send(Start(type="http.response.start", status=200, headers=[]))
        await send({"type": "http.response.body", "body": b""})

    router.respond = responder(200)
    run(mw, router)  # the route is now in the C cache
    router.respond = respond
    run(mw, router)
    assert totals(registry) == {n: 2 for n in NAMES}


class EvilKey:
    """A dict key hashing like `name`: looking `name` up calls its __eq__."""

    def __init__(self, name, action):
        self.name, self.action = name, action

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        self.action()
        return False


@pytest.mark.parametrize("where", ["message", "scope"])
def test_lookups_that_run_code_before_the_cache(where):
    """A key in the message or scope whose __eq__ (run by the exchange's own
    lookups, before the cache) clears the metrics, drops the cache and
    re-enters the exchange: the request counts once, into fresh series."""
    registry = Registry()
    router = Router(None)
    mw = MetricsMiddleware(router, registry=registry, duration_histogram=True)
    router.respond = responder(200)
    run(mw, router)
    exchanges = []

    def havoc():
        if len(exchanges) != 1:
            return
        exchange = exchanges.pop()
        for name in (*NAMES, DURATION):
            registry.get(name)._clear()
        mw._route_series.clear()
        mw._series.clear()
        exchange({"type": "http.response.start", "status": 200}).close()

    async def respond(scope, send):
        exchanges.append(send)
        start = {EvilKey("status", havoc): 1} if where == "message" else {}
        start.update(type="http.response.start", status=200, headers=[])
        await send(start)
        await send({"type": "http.response.body", "body": b""})

    router.respond = respond
    scope = {EvilKey("route", havoc): 1} if where == "scope" else None
    run(mw, router, scope=scope)
    assert exchanges == []  # havoc ran
    assert totals(registry) == {n: 1 for n in NAMES}
    assert [v["count"] for v in values(registry, DURATION).values()] == [1]


def test_route_with_reentrant_eq_and_hash_is_keyed_by_identity():
    """scope["route"] is compared by identity: its __eq__/__hash__ (which
    clear the metrics) are never called."""
    registry = Registry()
    called = []

    class EvilRoute(Route):
        def __eq__(self, other):
            called.append("eq")
            registry.get(NAMES[0])._clear()
            return True

        def __hash__(self):
            called.append("hash")
            registry.get(NAMES[0])._clear()
            return 0

    router = Router(responder(200))
    router.routes = [EvilRoute("/users/{id}")]
    router.by_path = {"/users/1": router.routes[0]}
    mw = MetricsMiddleware(router, registry=registry)
    for _ in range(3):
        run(mw, router)
    assert called == []
    assert values(registry, "requests_total_counter") == {
        key(method="GET", path="/users/{id}"): 3
    }


def test_send_that_raises_and_send_that_clears_the_metrics():
    """The count is made before forwarding: a send that raises leaves the
    response counted and the exception counted; one that clears the
    metrics leaves the series cleared, and the next request counts into
    fresh series (the bound series find theirs again)."""
    registry = Registry()
    router = Router(responder(200))
    mw = MetricsMiddleware(router, registry=registry, duration_histogram=True)
    run(mw, router)

    async def receive():
        return {"type": "http.request"}

    def raising(message):
        raise OSError("client gone")

    scope = {"type": "http", "path": "/users/1", "method": "GET", "app": router}
    with pytest.raises(OSError):
        asyncio.run(mw(scope, receive, raising))
    assert totals(registry) == {n: 2 for n in NAMES}
    assert sum(values(registry, "exceptions_total_counter").values()) == 1

    async def clearing(message):
        for name in (*NAMES, DURATION):
            registry.get(name)._clear()

    scope = {"type": "http", "path": "/users/1", "method": "GET", "app": router}
    asyncio.run(mw(scope, receive, clearing))
    assert totals(registry) == {n: 0 for n in NAMES}
    run(mw, router)
    assert totals(registry) == {n: 1 for n in NAMES}
    assert [v["count"] for v in values(registry, DURATION).values()] == [1]


def test_exchange_is_only_made_by_open_exchange():
    """A bare Exchange (no middleware) refuses messages instead of crashing."""
    exchange = _core.Exchange()
    with pytest.raises(AttributeError):
        exchange({"type": "http.response.start", "status": 200})
    assert exchange.elapsed() == 0.0


# ------------------------------------------------------------ route table


class Method(str):
    """A str subclass: never a key of the table (its == could run code)."""


# "/a" twice: equal paths, distinct objects (a path is matched by value)
HEADS = [Route("/a"), Route("/b"), Route("/c"), "/a", "".join(["/", "a"]), "/y"]
HEADS.append(Method("/z"))
METHODS = ["GET", "POST", "", "G\u00e9T", Method("GET")]
STATUSES = [200, 404, 0, -1, 2**70, True, 200.0]

table_key = st.tuples(
    st.sampled_from(HEADS),
    st.booleans(),
    st.sampled_from(METHODS),
    st.sampled_from(STATUSES),
)
table_ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["remember", "get"]), table_key),
        st.tuples(st.just("clear")),
    ),
    max_size=60,
)


def model_key(head, routed, method, status):
    """The key the table files a (head, method, status) under, None if the
    exchange could not look it up (so the table keeps nothing for it)."""
    if type(method) is not str or type(status) is not int:
        return None
    if not -(2**63) <= status < 2**63 or (not routed and type(head) is not str):
        return None
    return (("route", id(head)) if routed else ("path", head), method, status)


@settings(max_examples=300)
@given(capacity=st.integers(1, 6), ops=table_ops)
def test_route_table_against_a_dict_model(capacity, ops):
    """remember/get/clear as a dict keyed by (route identity or path value,
    method, status) that starts again when full; keys the exchange cannot
    look up (a str subclass, a bool or float or huge status, an unrouted
    head that is not an exact str) are never kept."""
    table = _core.RouteTable(capacity)
    model = {}
    for number, (op, *keyed) in enumerate(ops):
        if op == "clear":
            table.clear()
            model.clear()
            continue
        head, routed, method, status = keyed[0]
        mk = model_key(head, routed, method, status)
        if op == "remember":
            series = (None, None, None, number)
            table.remember(head, routed, method, status, series)
            if mk is not None:
                if len(model) >= capacity:
                    model.clear()
                model[mk] = series
        assert table.get(head, routed, method, status) == model.get(mk)
        assert len(table) == len(model) <= capacity
        by_id = {id(h): h for h in HEADS}
        kept = [
            (by_id[k[0][1]] if k[0][0] == "route" else k[0][1], *k[1:]) for k in model
        ]
        assert sorted(map(repr, table.keys())) == sorted(map(repr, kept))


def test_route_table_refuses_a_wrong_series_and_a_zero_capacity():
    with pytest.raises(ValueError):
        _core.RouteTable(0)
    table = _core.RouteTable(4)
    with pytest.raises(ValueError):
        table.remember("/x", False, "GET", 200, (None, None))
    assert len(table) == 0


def test_route_table_is_whole_when_what_it_lets_go_of_runs_code():
    """A route (or series) whose finalizer uses the table, released by a
    full table starting again, by an entry replaced and by clear(): the
    finalizer finds the table whole, and the table stays consistent."""
    table = _core.RouteTable(3)
    seen = []

    class Dying(Route):
        def __del__(self):
            table.remember(keeper, True, "GET", 200, (None, None, None, "again"))
            seen.append((len(table), table.get(keeper, True, "GET", 200)))

    keeper = Route("/keeper")
    for i in range(3):
        table.remember(Dying(f"/{i}"), True, "GET", 200, (None, None, None, i))
    assert len(table) == 3 and seen == []
    table.remember("/new", False, "GET", 200, (None, None, None, "new"))  # full
    assert len(seen) == 3
    assert all(entry[1] == (None, None, None, "again") for entry in seen)
    assert table.get("/new", False, "GET", 200) == (None, None, None, "new")
    assert len(table) == len(table.keys()) == 2

    seen.clear()
    table.remember("/r", False, "GET", 500, (Dying("/s"), None, None, 1))
    table.remember("/r", False, "GET", 500, (None, None, None, 2))  # replaced
    assert len(seen) == 1
    assert table.get("/r", False, "GET", 500) == (None, None, None, 2)

    seen.clear()
    table.remember(Dying("/t"), True, "PUT", 201, (None, None, None, 3))
    table.clear()
    assert len(seen) == 1
    assert len(table) == len(table.keys())
