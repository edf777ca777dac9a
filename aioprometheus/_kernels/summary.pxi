# Summary storage: per series a quantile estimator plus count and sum.

cdef class SummaryCore(Metric):
    """Observations summarised by count, sum and estimated quantiles.

    The Metric's `states` are the per-series estimators: a QuantileEstimator
    each (all-time quantiles), or a SlidingWindow each (window.pxi) once
    `_set_window` is called. Code reading a state goes by the state's own
    type, not by the metric's setting: a state made just before a finalizer
    reconfigured a cleared metric may be of the other kind."""

    cdef unsigned long long* counts
    cdef double* sums
    cdef tuple invariant_pairs    # ((phi, eps), ...) as given
    cdef tuple phis_sorted        # the phis in increasing order, for exposition
    cdef tuple window             # (max_age_seconds, age_buckets), or None: all-time
    cdef double period_seconds    # max_age_seconds / age_buckets
    cdef ManualClock clock        # None: the system's monotonic clock

    def __cinit__(self, *args, **kwargs):
        self.series.reserved = "quantile"
        self.states = []

    def __dealloc__(self):
        self.free_array(self.counts, self.capacity * sizeof(unsigned long long))
        self.free_array(self.sums, self.capacity * sizeof(double))

    def _set_invariants(self, invariants):
        """Fix the (quantile, error) targets; validated by building one estimator."""
        probe = QuantileEstimator(invariants)
        pairs = probe.invariants
        phis = tuple(sorted(phi for phi, _ in pairs))
        if self.series.count:         # checked last: the above may run Python code
            raise ValueError("Invariants can only be set before the first observation")
        self.invariant_pairs = pairs
        self.phis_sorted = phis

    def _set_window(self, max_age_seconds, age_buckets, clock=None):
        """Report quantiles over about the last `max_age_seconds`, rotating
        `age_buckets` estimators (`clock`: a ManualClock for tests)."""
        max_age, buckets, period, clock = checked_window(max_age_seconds, age_buckets, clock)
        if self.series.count:         # checked last: the above may run Python code
            raise ValueError("The window can only be set before the first observation")
        self.window = (max_age, buckets)
        self.period_seconds = period
        self.clock = clock

    @property
    def max_age_seconds(self):
        """The window's length in seconds (None: quantiles are all-time)."""
        return None if self.window is None else self.window[0]

    @property
    def age_buckets(self):
        """The estimators the window rotates (None: quantiles are all-time)."""
        return None if self.window is None else self.window[1]

    cdef inline double now(self) noexcept:
        return monotonic_seconds() if self.clock is None else self.clock.now

    cdef inline double current_period(self) noexcept:
        """The number of the window period now (periods count from the clock's zero)."""
        return floor(self.now() / self.period_seconds)

    cdef Py_ssize_t samples_per_series(self):
        return len(self.phis_sorted) + 2

    cdef Metric blank(self):
        return SummaryCore.__new__(SummaryCore)

    cdef int copy_values_into(self, Metric copy) except -1:
        cdef SummaryCore twin = <SummaryCore>copy
        cdef Py_ssize_t n = self.series.count
        twin.invariant_pairs = self.invariant_pairs
        twin.phis_sorted = self.phis_sorted
        twin.window = self.window
        twin.period_seconds = self.period_seconds
        if self.window is not None:   # the copy's windows stay as of now
            twin.clock = ManualClock(self.now())
        twin.reserve(n or 1)
        memcpy(twin.counts, self.counts, n * sizeof(unsigned long long))
        memcpy(twin.sums, self.sums, n * sizeof(double))
        twin.states = [copied_state(self.states[i]) for i in range(n)]
        return 0

    @property
    def invariants(self):
        return self.invariant_pairs

    @invariants.setter
    def invariants(self, invariants):
        self._set_invariants(invariants)

    cdef object new_state(self):
        if self.window is None:
            return QuantileEstimator(self.invariant_pairs)
        return new_window(self.invariant_pairs, self.window[1])

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef unsigned long long* c = <unsigned long long*>self.resize_array(
            self.counts, n * sizeof(unsigned long long))
        if c == NULL:
            raise MemoryError()
        self.counts = c
        cdef double* s = <double*>self.resize_array(self.sums, n * sizeof(double))
        if s == NULL:
            raise MemoryError()
        self.sums = s
        self.capacity = n
        return 0

    cdef int reset(self, Py_ssize_t series) except -1:
        self.counts[series] = 0
        self.sums[series] = 0.0
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        self.counts[dst] = self.counts[src]
        self.sums[dst] = self.sums[src]
        return 0

    cdef BoundSeries bound(self, tuple key):
        return SummarySeries(self, key)

    def observe(self, labels, value):
        """Add `value` to the series for `labels`."""
        cdef double v = to_observation(value, "Summary")
        if self.invariant_pairs is None:
            raise RuntimeError("Summary invariants were never set")
        self.observe_at(self.slot(labels), v)

    cdef inline void observe_at(self, Py_ssize_t i, double v) noexcept:
        state = self.states[i]
        if type(state) is QuantileEstimator:
            (<QuantileEstimator>state).insert(v)
        else:
            (<SlidingWindow>state).insert(v, self.current_period())
        self.counts[i] += 1
        self.sums[i] += v
        if self.shared != NULL:
            self.share_values(i, self.shared[i])

    cdef uint32_t shared_words(self) noexcept:
        return 2

    cdef void share_values(self, Py_ssize_t i, uint64_t* words) noexcept:
        """Count and sum (quantiles are not merged across workers)."""
        store_word(words, self.counts[i])
        store_double(words + 1, self.sums[i])

    cdef QuantileEstimator estimator_at(self, Py_ssize_t series):
        """The estimator that answers for `series` (a window's, brought up to now)."""
        state = self.states[series]
        if type(state) is QuantileEstimator:
            return <QuantileEstimator>state
        return (<SlidingWindow>state).current(self.current_period())

    cdef object read(self, Py_ssize_t i):
        """{phi: estimate, ..., "count": n, "sum": s} of series `i` (C values
        read first: building the dict may run the garbage collector)."""
        cdef QuantileEstimator est = self.estimator_at(i)
        cdef unsigned long long count = self.counts[i]
        cdef double total_sum = self.sums[i]
        cdef dict result = {}
        for phi, _ in self.invariant_pairs:
            result[phi] = est.query(phi)
        result["count"] = count
        result["sum"] = total_sum
        return result

    def get(self, labels):
        """{phi: estimate, ..., "count": n, "sum": s} for `labels`."""
        return self.read(self.existing(labels))

    cdef object export_series(self, Py_ssize_t i):
        return (self.counts[i], self.sums[i], self.states[i])

    cdef int import_series(self, Py_ssize_t i, object data) except -1:
        cdef unsigned long long count = data[0]
        cdef double total_sum = data[1]
        state = data[2]
        if self.window is None:
            if type(state) is not QuantileEstimator:
                raise TypeError("an all-time summary's series needs a QuantileEstimator")
        elif (type(state) is not SlidingWindow
                or len((<SlidingWindow>state).ring) != self.window[1]):
            raise TypeError("a windowed summary's series needs a SlidingWindow of its age_buckets")
        self.counts[i] = count
        self.sums[i] = total_sum
        self.states[i] = state
        return 0

    cdef object config(self):
        return (self.invariant_pairs, self.window, self.clock)

    cdef int configure(self, object config) except -1:
        invariants, window, clock = config
        self._set_invariants(invariants)
        if window is not None:
            self._set_window(window[0], window[1], clock)
        return 0


cdef object copied_state(object state):
    """An independent copy of a summary series' estimator or window."""
    if type(state) is QuantileEstimator:
        return (<QuantileEstimator>state).copy()
    return (<SlidingWindow>state).copy()
