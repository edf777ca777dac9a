# Histogram storage: per series a row of bucket counts plus a sum.
#
# Counts are kept per bucket (not cumulative) so an observation touches one
# counter; the encoders accumulate at scrape time. The last bound is +Inf.
# A histogram with native buckets (native.pxi) keeps them beside these; a
# native-only one has the +Inf bucket alone, as its count.

cdef class HistogramCore(Metric):
    """Bucketed observations: bounds shared by all series, counts per series."""

    cdef double* bounds
    cdef Py_ssize_t nbounds
    cdef unsigned long long* counts   # capacity rows of nbounds
    cdef double* sums
    cdef tuple bound_values           # the bounds as Python floats, for get()
    cdef NativeBuckets native         # None unless native buckets were set

    def __dealloc__(self):
        free(self.bounds)
        self.free_array(self.counts, self.capacity * self.nbounds * sizeof(unsigned long long))
        self.free_array(self.sums, self.capacity * sizeof(double))

    def __cinit__(self, *args, **kwargs):
        self.series.reserved = "le"

    def _set_buckets(self, buckets):
        """Fix the bucket upper bounds (sorted, distinct; +Inf appended)."""
        cdef list bounds = [float(b) for b in buckets]
        cdef Py_ssize_t i
        if any(b != b for b in bounds):
            raise ValueError("Bucket bounds must not be NaN")
        if bounds != sorted(bounds):
            raise ValueError("Buckets not in sorted order")
        if len(set(bounds)) != len(bounds):
            raise ValueError("Bucket bounds must be distinct")
        if not bounds or bounds[len(bounds) - 1] != INFINITY:
            bounds.append(INFINITY)
        if len(bounds) < 2:
            raise ValueError("Must have at least two buckets")
        self.install_bounds(tuple(bounds))

    def _set_native(self, factor, zero_threshold, max_buckets, min_reset_duration,
                    max_zero_threshold, bint classic):
        """Add native buckets (see native.pxi); without `classic` buckets the
        histogram is native only."""
        cdef NativeBuckets native = NativeBuckets(
            pick_schema(factor), zero_threshold, max_buckets, min_reset_duration,
            max_zero_threshold)
        if not classic:
            self.install_bounds((INFINITY,))
        elif self.nbounds == 0:
            raise RuntimeError("Histogram buckets were never set")
        if self.series.count:
            raise ValueError("Native buckets can only be set before the first observation")
        native.reserve(self.capacity)
        self.native = native

    def _set_native_clock(self, ManualClock clock):
        """Time the native buckets' min_reset_duration by `clock` (None: the
        system's monotonic clock), for tests."""
        if self.native is None:
            raise ValueError(f"Histogram {self.metric_name!r} has no native buckets")
        self.native.clock = clock

    def get_native(self, labels):
        """The native buckets of `labels`' series: {"schema", "zero_threshold",
        "zero_count", "positive": {key: count}, "negative": {key: count}}."""
        if self.native is None:
            raise ValueError(f"Histogram {self.metric_name!r} has no native buckets")
        with PausedGC():
            return self.native.read(self.existing(labels))

    cdef int install_bounds(self, tuple bound_values) except -1:
        """Make `bound_values` (checked, ending at +Inf) the bucket bounds."""
        cdef Py_ssize_t i
        cdef double* fresh = <double*>malloc(len(bound_values) * sizeof(double))
        if fresh == NULL:
            raise MemoryError()
        for i in range(len(bound_values)):
            fresh[i] = <double>bound_values[i]
        # checked last: everything above may run Python code
        if self.series.count:
            free(fresh)
            raise ValueError("Buckets can only be set before the first observation")
        free(self.bounds)
        self.bounds = fresh
        self.nbounds = len(bound_values)
        self.bound_values = bound_values
        free(self.counts)
        free(self.sums)
        self.counts = NULL
        self.sums = NULL
        self.capacity = 0
        return 0

    cdef Py_ssize_t samples_per_series(self):
        return self.nbounds + 2

    cdef Metric blank(self):
        return HistogramCore.__new__(HistogramCore)

    cdef int copy_values_into(self, Metric copy) except -1:
        cdef HistogramCore twin = <HistogramCore>copy
        cdef Py_ssize_t n = self.series.count
        twin.bounds = <double*>malloc((self.nbounds or 1) * sizeof(double))
        if twin.bounds == NULL:
            raise MemoryError()
        memcpy(twin.bounds, self.bounds, self.nbounds * sizeof(double))
        twin.nbounds = self.nbounds
        twin.bound_values = self.bound_values
        twin.reserve(n or 1)
        memcpy(twin.counts, self.counts, n * self.nbounds * sizeof(unsigned long long))
        memcpy(twin.sums, self.sums, n * sizeof(double))
        if self.native is not None:
            twin.native = self.native.copy(n)
        return 0

    @property
    def upper_bounds(self):
        return list(self.bound_values)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef unsigned long long* c = <unsigned long long*>self.resize_array(
            self.counts, n * self.nbounds * sizeof(unsigned long long))
        if c == NULL:
            raise MemoryError()
        self.counts = c
        cdef double* s = <double*>self.resize_array(self.sums, n * sizeof(double))
        if s == NULL:
            raise MemoryError()
        self.sums = s
        if self.native is not None:
            self.native.reserve(n)
        self.capacity = n
        return 0

    cdef int reset(self, Py_ssize_t series) except -1:
        self.reset_classic(series)
        if self.native is not None:
            self.native.reset(series)
        return 0

    cdef inline void reset_classic(self, Py_ssize_t series) noexcept:
        memset(self.counts + series * self.nbounds, 0, self.nbounds * sizeof(unsigned long long))
        self.sums[series] = 0.0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        memcpy(self.counts + dst * self.nbounds, self.counts + src * self.nbounds,
               self.nbounds * sizeof(unsigned long long))
        self.sums[dst] = self.sums[src]
        if self.native is not None:
            self.native.move(dst, src)
        return 0

    cdef inline Py_ssize_t bucket_of(self, double v) noexcept:
        """First bucket whose bound is >= v (NaN lands in +Inf)."""
        cdef Py_ssize_t lo = 0
        cdef Py_ssize_t hi = self.nbounds - 1
        cdef Py_ssize_t mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if v <= self.bounds[mid]:
                hi = mid
            else:
                lo = mid + 1
        return lo

    cdef BoundSeries bound(self, tuple key):
        return HistogramSeries(self, key)

    def observe(self, labels, value, exemplar=None):
        """Count `value` into its bucket of the series for `labels`;
        `exemplar` (a dict such as ``{"trace_id": "..."}``) becomes that
        bucket's latest exemplar."""
        cdef double v = to_observation(value, "Histogram")
        if self.nbounds == 0:
            raise RuntimeError("Histogram buckets were never set")
        if exemplar is not None:
            self.observe_with_exemplar(labels, v, exemplar)
            return
        self.observe_at(self.slot(labels), v)

    cdef int observe_with_exemplar(self, labels, double v, exemplar) except -1:
        # the Python work first: the exemplar's text, the lists, the series
        cdef tuple rendered = rendered_exemplar(exemplar, v)
        cdef list fresh_row = [None] * self.nbounds
        keep_exemplars(self)
        cdef Py_ssize_t i = self.slot(labels)
        self.observe_at(i, v)
        cdef list exemplars = self.exemplars    # None if cleared meanwhile
        cdef object row
        if exemplars is not None and i < len(exemplars):
            row = exemplars[i]
            if row is None:
                exemplars[i] = row = fresh_row
            (<list>row)[self.bucket_of(v)] = rendered
        return 0

    cdef inline int observe_at(self, Py_ssize_t i, double v) except -1:
        cdef Py_ssize_t at = i * self.nbounds + self.bucket_of(v)
        cdef uint64_t* words
        if self.native is not None and self.native.observe(i, v):
            self.reset_classic(i)      # the native bucket limit reset the series
            if self.shared != NULL:
                self.share_values(i, self.shared[i])
        self.counts[at] += 1
        self.sums[i] += v
        if self.shared != NULL:        # the two words that changed
            words = self.shared[i]
            store_word(words + 1 + (at - i * self.nbounds), self.counts[at])
            store_double(words, self.sums[i])
            if self.native is not None:
                self.native.mirror(i, self.store, words, v)
        return 0

    cdef uint32_t shared_words(self) noexcept:
        return <uint32_t>self.nbounds + 1

    cdef void share_values(self, Py_ssize_t i, uint64_t* words) noexcept:
        """The sum, then each bucket's own (not cumulative) count."""
        cdef Py_ssize_t b
        store_double(words, self.sums[i])
        for b in range(self.nbounds):
            store_word(words + 1 + b, self.counts[i * self.nbounds + b])

    cdef object read(self, Py_ssize_t i):
        """{bound: cumulative count, ..., "count": n, "sum": s} of series `i`.

        The row is copied before any object is made: making one may run the
        garbage collector, and with it code that changes this metric."""
        cdef Py_ssize_t nbounds = self.nbounds
        cdef tuple bounds = self.bound_values
        cdef unsigned long long* row = <unsigned long long*>malloc(
            nbounds * sizeof(unsigned long long))
        cdef double total_sum = self.sums[i]
        cdef unsigned long long running = 0
        cdef dict result = {}
        cdef Py_ssize_t b
        if row == NULL:
            raise MemoryError()
        memcpy(row, self.counts + i * nbounds, nbounds * sizeof(unsigned long long))
        try:
            for b in range(nbounds):
                running += row[b]
                result[bounds[b]] = running
        finally:
            free(row)
        result["count"] = running
        result["sum"] = total_sum
        return result

    def get(self, labels):
        """{bound: cumulative count, ..., "count": n, "sum": s} for `labels`."""
        return self.read(self.existing(labels))

    cdef object export_series(self, Py_ssize_t i):
        cdef unsigned long long* row = self.counts + i * self.nbounds
        if self.native is not None:
            return ([row[b] for b in range(self.nbounds)], self.sums[i],
                    self.native.export_series(i))
        return ([row[b] for b in range(self.nbounds)], self.sums[i])

    cdef int import_series(self, Py_ssize_t i, object data) except -1:
        cdef list counts = list(data[0])
        cdef double total_sum = data[1]
        cdef Py_ssize_t b
        if len(counts) != self.nbounds:
            raise ValueError("bucket counts do not match the buckets")
        for b in range(self.nbounds):
            self.counts[i * self.nbounds + b] = counts[b]
        self.sums[i] = total_sum
        if self.native is not None:
            self.native.import_series(i, data[2])
        return 0

    cdef object config(self):
        if self.native is not None:
            return {"buckets": self.bound_values, "native": self.native.settings()}
        return self.bound_values

    cdef int configure(self, object config) except -1:
        if not isinstance(config, dict):
            self._set_buckets(config)
            return 0
        buckets = config["buckets"]
        schema, zero_threshold, max_buckets, min_reset, max_zero = config["native"]
        if len(buckets) > 1:
            self._set_buckets(buckets)
        self._set_native(2.0 ** (2.0 ** -schema), zero_threshold, max_buckets, min_reset,
                         max_zero, len(buckets) > 1)
        return 0
