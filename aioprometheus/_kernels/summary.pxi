# Summary storage: per series a quantile estimator plus count and sum.

cdef class SummaryCore(Metric):
    """Observations summarised by count, sum and estimated quantiles.

    The per-series estimators are the Metric's `states`."""

    cdef unsigned long long* counts
    cdef double* sums
    cdef tuple invariant_pairs    # ((phi, eps), ...) as given
    cdef tuple phis_sorted        # the phis in increasing order, for exposition

    def __cinit__(self, *args, **kwargs):
        self.series.reserved = "quantile"
        self.states = []

    def __dealloc__(self):
        free(self.counts)
        free(self.sums)

    def _set_invariants(self, invariants):
        """Fix the (quantile, error) targets; validated by building one estimator."""
        probe = QuantileEstimator(invariants)
        pairs = probe.invariants
        phis = tuple(sorted(phi for phi, _ in pairs))
        if self.series.count:         # checked last: the above may run Python code
            raise ValueError("Invariants can only be set before the first observation")
        self.invariant_pairs = pairs
        self.phis_sorted = phis

    cdef Py_ssize_t samples_per_series(self):
        return len(self.phis_sorted) + 2

    cdef Metric blank(self):
        return SummaryCore.__new__(SummaryCore)

    cdef int copy_values_into(self, Metric copy) except -1:
        cdef SummaryCore twin = <SummaryCore>copy
        cdef Py_ssize_t n = self.series.count
        twin.invariant_pairs = self.invariant_pairs
        twin.phis_sorted = self.phis_sorted
        twin.reserve(n or 1)
        memcpy(twin.counts, self.counts, n * sizeof(unsigned long long))
        memcpy(twin.sums, self.sums, n * sizeof(double))
        twin.states = [self.estimator_at(i).copy() for i in range(n)]
        return 0

    @property
    def invariants(self):
        return self.invariant_pairs

    @invariants.setter
    def invariants(self, invariants):
        self._set_invariants(invariants)

    cdef object new_state(self):
        return QuantileEstimator(self.invariant_pairs)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef unsigned long long* c = <unsigned long long*>realloc(
            self.counts, n * sizeof(unsigned long long))
        if c == NULL:
            raise MemoryError()
        self.counts = c
        cdef double* s = <double*>realloc(self.sums, n * sizeof(double))
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
        self.estimator_at(i).insert(v)
        self.counts[i] += 1
        self.sums[i] += v

    cdef QuantileEstimator estimator_at(self, Py_ssize_t series):
        return <QuantileEstimator>self.states[series]

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
        return (self.counts[i], self.sums[i], self.estimator_at(i))

    cdef int import_series(self, Py_ssize_t i, object data) except -1:
        cdef unsigned long long count = data[0]
        cdef double total_sum = data[1]
        cdef QuantileEstimator est = data[2]
        self.counts[i] = count
        self.sums[i] = total_sum
        self.states[i] = est
        return 0

    cdef object config(self):
        return self.invariant_pairs

    cdef int configure(self, object config) except -1:
        self._set_invariants(config)
        return 0
