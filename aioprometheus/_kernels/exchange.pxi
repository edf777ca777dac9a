# The ASGI middleware's per-request exchange: the `send` handed to the app.
#
# Its common path runs in C, without a Python frame: a response start on a
# route the middleware has already counted (with this method and status) is
# looked up in the middleware's route table (route_table.pxi) and its series
# incremented; the last body message of a timed request observes its
# duration; every other message is forwarded as is. Anything else (a message
# that is not an exact dict, a status that is not an exact int, a route not
# in the table, a websocket) goes to the middleware's Python
# `_on_message(exchange, message)`.
#
# The message and scope are read, and the key taken, before the lookup;
# from the lookup to the commit no Python code runs (the table compares
# identities, exact str and C longs), and the series are incremented
# through their own C methods, which find their series again if the metric
# was cleared.

from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef inline double perf_seconds() noexcept:
    """The clock of time.perf_counter() on POSIX (full resolution: a
    request takes microseconds, unlike the windows' coarse clock)."""
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return <double>now.tv_sec + <double>now.tv_nsec * 1e-9


cdef int count_each(tuple series) except -1:
    """inc() a response's three counter series (None: an excluded path's),
    each found again by its own C method; nothing is allocated here."""
    cdef Py_ssize_t i
    cdef object one
    for i in range(3):
        one = series[i]
        if one is not None:
            (<ScalarSeries?>one).add_one()
    return 0


@cython.final
@cython.freelist(8)   # one per request in flight: kept for reuse, not freed
cdef class Exchange:
    """One request's send wrapper and state (see the middleware's
    `_on_message`). `state` is False until the response is counted, then
    True, or while a timed request's duration is pending, its duration
    histogram series."""

    cdef readonly object middleware
    cdef readonly object scope
    cdef readonly object send
    cdef readonly object path
    cdef readonly object root_path
    cdef RouteTable routes
    cdef public object state
    cdef bint timed
    cdef double started

    def elapsed(self):
        """Seconds since the request arrived (0.0 if it is not timed)."""
        if not self.timed:
            return 0.0
        return perf_seconds() - self.started

    def __call__(self, message):
        state = self.state
        if state is True:
            return self.send(message)
        if type(message) is not dict:
            self.middleware._on_message(self, message)
            return self.send(message)
        kind = (<dict>message).get("type")
        if type(kind) is not str:
            self.middleware._on_message(self, message)
        elif state is False:
            if not self.counted_start(<dict>message, <str>kind):
                self.middleware._on_message(self, message)
        elif type(state) is HistogramSeries:
            if <str>kind == "http.response.body":
                last = not (<dict>message).get("more_body", False)
                if last and self.state is state:  # not observed meanwhile
                    self.state = True
                    (<HistogramSeries>state).observe_double(
                        perf_seconds() - self.started)
        else:
            self.middleware._on_message(self, message)
        return self.send(message)

    cdef bint counted_start(self, dict message, str kind) except -1:
        """Count an HTTP response start from the route table; False if it
        is not one this path can count."""
        if (kind != "http.response.start" or type(self.scope) is not dict
                or self.routes is None):
            return False
        cdef dict scope = <dict>self.scope
        status = message.get("status")
        method = scope.get("method")
        route = scope.get("route")
        if route is not None:
            head = route
        elif (scope.get("endpoint") is None and "router" in scope
                and type(self.root_path) is str and type(self.path) is str):
            # the router matched no route: labelled by the full path
            head = <str>self.root_path + <str>self.path
        else:
            return False
        cdef long code
        if not keyable(head, route is not None, method, status, &code):
            return False
        # From here to the commit, no Python code runs (see the top).
        entry = self.routes.find(head, route is not None, <str>method, code)
        if entry is None or self.state is not False:
            return False
        series = entry.series
        count_each(series)
        self.state = series[3]
        return True


def open_exchange(middleware, scope, send, RouteTable routes not None, bint timed):
    """The exchange of a request that just arrived (its path and root path
    kept before the router rewrites them; timed from now if `timed`)."""
    cdef Exchange exchange = Exchange.__new__(Exchange)
    exchange.middleware = middleware
    exchange.scope = scope
    exchange.send = send
    if type(scope) is dict:  # as every server makes it: read in C
        exchange.path = (<dict>scope)["path"]
        exchange.root_path = (<dict>scope).get("root_path", "")
    else:
        exchange.path = scope["path"]
        exchange.root_path = scope.get("root_path", "")
    exchange.routes = routes
    exchange.state = False
    exchange.timed = timed
    if timed:
        exchange.started = perf_seconds()
    return exchange
