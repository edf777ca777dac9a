# Summary storage: per series a quantile estimator plus count and sum.

cdef class SummaryCore(Metric):
    """Observations summarised by count, sum and estimated quantiles."""

    cdef list estimators          # series number -> QuantileEstimator
    cdef unsigned long long* counts
    cdef double* sums
    cdef tuple invariant_pairs    # ((phi, eps), ...) as given
    cdef tuple phis_sorted        # the phis in increasing order, for exposition

    def __cinit__(self, *args, **kwargs):
        self.series.reserved = "quantile"
        self.estimators = []

    def __dealloc__(self):
        free(self.counts)
        free(self.sums)

    def _set_invariants(self, invariants):
        """Fix the (quantile, error) targets; validated by building one estimator."""
        probe = QuantileEstimator(invariants)
        if self.series.count:
            raise ValueError("Invariants can only be set before the first observation")
        self.invariant_pairs = probe.invariants
        self.phis_sorted = tuple(sorted(phi for phi, _ in self.invariant_pairs))

    cdef Py_ssize_t samples_per_series(self):
        return len(self.phis_sorted) + 2

    @property
    def invariants(self):
        return self.invariant_pairs

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
        estimator = QuantileEstimator(self.invariant_pairs)
        if series == len(self.estimators):
            self.estimators.append(estimator)
        else:
            self.estimators[series] = estimator
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        self.counts[dst] = self.counts[src]
        self.sums[dst] = self.sums[src]
        self.estimators[dst] = self.estimators[src]
        return 0

    def _remove(self, labels):
        Metric._remove(self, labels)
        del self.estimators[self.series.count:]   # the moved (or removed) last one

    def _clear(self):
        Metric._clear(self)
        self.estimators = []

    def observe(self, labels, value):
        """Add `value` to the series for `labels`."""
        cdef double v = to_observation(value, "Summary")
        if self.invariant_pairs is None:
            raise RuntimeError("Summary invariants were never set")
        cdef Py_ssize_t i = self.slot(labels)
        (<QuantileEstimator>self.estimators[i]).insert(v)
        self.counts[i] += 1
        self.sums[i] += v

    cdef QuantileEstimator estimator_at(self, Py_ssize_t series):
        return <QuantileEstimator>self.estimators[series]

    def get(self, labels):
        """{phi: estimate, ..., "count": n, "sum": s} for `labels`."""
        cdef Py_ssize_t i = self.existing(labels)
        cdef QuantileEstimator est = self.estimator_at(i)
        cdef dict result = {}
        for phi, _ in self.invariant_pairs:
            result[phi] = est.query(phi)
        result["count"] = self.counts[i]
        result["sum"] = self.sums[i]
        return result
