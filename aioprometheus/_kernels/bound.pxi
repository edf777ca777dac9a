# Bound series: a label set looked up once, then updated without a lookup.
#
#     get = requests.labels(method="GET", path="/")   # looked up (or created) here
#     get.inc()                                        # straight to the value
#
# A bound series keeps its label set and the series number it had. Numbers
# only move when a series is removed or the metric cleared, and both bump the
# metric's `layout`; a bound series whose layout is stale finds its number
# again (creating the series if it is gone), so it never writes to another.
#
# The update methods take their one value positionally only (a bare METH_O
# or METH_NOARGS call, the cheapest Python can make).


cdef class BoundSeries:
    """One series of a metric, held by number and label set."""

    cdef Metric metric
    cdef tuple key
    cdef Py_ssize_t index
    cdef unsigned long long layout

    def __cinit__(self, Metric metric, tuple key):
        self.metric = metric
        self.key = key
        self.index = metric.create(key)
        self.layout = metric.layout

    cdef inline Py_ssize_t slot(self) except -1:
        """The series' number now (found again if numbers moved since)."""
        if self.layout != self.metric.layout:
            self.index = self.metric.create(self.key)
            self.layout = self.metric.layout
        return self.index

    @property
    def label_values(self):
        """The series' labels, as their exposed texts."""
        return {self.key[i]: self.key[i + 1] for i in range(0, len(self.key), 2)}

    @cython.always_allow_keywords(False)
    def get(self):
        """The series' value (as the metric's get() gives it)."""
        return self.metric.read(self.slot())

    def __repr__(self):
        return f"<{type(self).__name__} {self.metric.metric_name} {self.label_values!r}>"


cdef class ScalarSeries(BoundSeries):
    cdef inline int add_one(self) except -1:
        """inc() for C callers (the ASGI exchange)."""
        cdef Py_ssize_t i = self.slot()
        (<ScalarMetric>self.metric).add_at(i, 1.0, True)
        return 0

    @cython.always_allow_keywords(False)
    def inc(self):
        """Add 1."""
        self.add_one()

    @cython.always_allow_keywords(False)
    def set(self, value):
        """Set to `value` (a number, or a numeric str)."""
        cdef bint is_int
        cdef double v = settable_number(value, self.metric, &is_int)
        (<ScalarMetric>self.metric).set_at(self.slot(), v, is_int)


cdef class CounterSeries(ScalarSeries):
    @cython.always_allow_keywords(False)
    def add(self, value):
        """Add `value` (>= 0)."""
        cdef bint is_int
        cdef double v = counter_amount(value, &is_int)
        (<ScalarMetric>self.metric).add_at(self.slot(), v, is_int)


cdef class GaugeSeries(ScalarSeries):
    @cython.always_allow_keywords(False)
    def dec(self):
        """Subtract 1."""
        cdef Py_ssize_t i = self.slot()
        (<ScalarMetric>self.metric).add_at(i, -1.0, True)

    @cython.always_allow_keywords(False)
    def add(self, value):
        """Add `value` (may be negative)."""
        cdef bint is_int
        cdef double v = to_number(value, "Gauge", &is_int)
        (<ScalarMetric>self.metric).add_at(self.slot(), v, is_int)

    @cython.always_allow_keywords(False)
    def sub(self, value):
        """Subtract `value`."""
        cdef bint is_int
        cdef double v = to_number(value, "Gauge", &is_int)
        (<ScalarMetric>self.metric).add_at(self.slot(), -v, is_int)


cdef class HistogramSeries(BoundSeries):
    cdef inline int observe_double(self, double v) except -1:
        """observe() of a C double (the ASGI exchange's duration)."""
        if (<HistogramCore>self.metric).nbounds == 0:
            raise RuntimeError("Histogram buckets were never set")
        (<HistogramCore>self.metric).observe_at(self.slot(), v)
        return 0

    @cython.always_allow_keywords(False)
    def observe(self, value):
        """Count `value` into its bucket."""
        self.observe_double(to_observation(value, "Histogram"))


cdef class SummarySeries(BoundSeries):
    @cython.always_allow_keywords(False)
    def observe(self, value):
        """Add `value` to the series' quantile estimate, count and sum."""
        cdef double v = to_observation(value, "Summary")
        if (<SummaryCore>self.metric).invariant_pairs is None:
            raise RuntimeError("Summary invariants were never set")
        (<SummaryCore>self.metric).observe_at(self.slot(), v)
