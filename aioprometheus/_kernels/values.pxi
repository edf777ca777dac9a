# Counter and gauge storage: one double per series.
#
# Values are doubles as on the wire; a per-series flag remembers whether a
# float ever went in, so a counter fed only ints reads back as an int.

cdef class ScalarMetric(Metric):
    """Series values as a C array of doubles."""

    cdef double* values
    cdef unsigned char* is_float

    def __dealloc__(self):
        self.free_array(self.values, self.capacity * sizeof(double))
        self.free_array(self.is_float, self.capacity)

    cdef int reserve(self, Py_ssize_t n) except -1:
        cdef double* v = <double*>self.resize_array(self.values, n * sizeof(double))
        if v == NULL:
            raise MemoryError()
        self.values = v
        cdef unsigned char* f = <unsigned char*>self.resize_array(self.is_float, n)
        if f == NULL:
            raise MemoryError()
        self.is_float = f
        self.capacity = n
        return 0

    cdef int reset(self, Py_ssize_t series) except -1:
        self.values[series] = 0.0
        self.is_float[series] = 0
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        self.values[dst] = self.values[src]
        self.is_float[dst] = self.is_float[src]
        return 0

    cdef int copy_values_into(self, Metric copy) except -1:
        cdef ScalarMetric twin = <ScalarMetric>copy
        twin.reserve(self.series.count or 1)
        memcpy(twin.values, self.values, self.series.count * sizeof(double))
        memcpy(twin.is_float, self.is_float, self.series.count)
        return 0

    cdef object read(self, Py_ssize_t i):
        cdef double v = self.values[i]
        if not self.is_float[i] and -INT64_SAFE < v < INT64_SAFE:
            return <long long>v
        return v

    cdef object export_series(self, Py_ssize_t i):
        return (self.values[i], bool(self.is_float[i]))

    cdef int import_series(self, Py_ssize_t i, object data) except -1:
        self.values[i], self.is_float[i] = data
        return 0

    cdef uint32_t shared_words(self) noexcept:
        return SCALAR_WORDS

    cdef void share_values(self, Py_ssize_t i, uint64_t* words) noexcept:
        """The value, whether it is a float, and for a most-recent gauge when
        it was set (seconds since the epoch)."""
        store_double(words, self.values[i])
        store_word(words + 1, self.is_float[i])
        if self.gauge_mode >= GAUGE_MOSTRECENT:
            store_double(words + 2, wall_seconds())

    def get(self, labels):
        """The value of the series for `labels`; KeyError if it does not exist."""
        return self.read(self.existing(labels))

    def set(self, labels, value):
        """Set the series for `labels` to `value` (a number, or a numeric str)."""
        cdef bint is_int
        cdef double v = settable_number(value, self, &is_int)
        self.set_at(self.slot(labels), v, is_int)

    cdef inline void set_at(self, Py_ssize_t i, double v, bint is_int) noexcept:
        self.values[i] = v
        self.is_float[i] = not is_int
        if self.shared != NULL:
            self.share_values(i, self.shared[i])

    cdef inline void add_at(self, Py_ssize_t i, double v, bint is_int) noexcept:
        """Add `v` to series `i` (a float makes the value a float)."""
        self.values[i] += v
        if not is_int:
            self.is_float[i] = 1
        if self.shared != NULL:
            self.share_values(i, self.shared[i])


cdef double settable_number(object value, object what, bint* is_int) except? -1.0:
    """What set() stores: a number, or the number a numeric str spells."""
    if isinstance(value, str):
        return number_from_text(value, what, is_int)
    return to_number(value, what, is_int)


cdef double counter_amount(object value, bint* is_int) except? -1.0:
    """An amount a counter may be increased by: a number >= 0."""
    cdef double v = to_number(value, "Counter", is_int)
    if not v >= 0.0:
        if v != v:
            raise ValueError("Counters can't be incremented by NaN")
        raise ValueError("Counters can't decrease")
    return v


cdef class CounterCore(ScalarMetric):
    """A value that only goes up."""

    cdef Metric blank(self):
        return CounterCore.__new__(CounterCore)

    cdef BoundSeries bound(self, tuple key):
        return CounterSeries(self, key)

    def inc(self, labels, exemplar=None):
        """Add 1 to the series for `labels`; `exemplar` (a dict such as
        ``{"trace_id": "..."}``) becomes the series' latest exemplar."""
        cdef Py_ssize_t i
        if exemplar is not None:
            self.add_with_exemplar(labels, 1.0, True, exemplar)
            return
        i = self.slot(labels)
        self.add_at(i, 1.0, True)

    def add(self, labels, value, exemplar=None):
        """Add `value` (>= 0) to the series for `labels` (see inc for `exemplar`)."""
        cdef bint is_int
        cdef double v = counter_amount(value, &is_int)
        if exemplar is not None:
            self.add_with_exemplar(labels, v, is_int, exemplar)
            return
        self.add_at(self.slot(labels), v, is_int)

    cdef int add_with_exemplar(self, labels, double v, bint is_int, exemplar) except -1:
        # the Python work first: the exemplar's text, its list, the series
        cdef tuple rendered = rendered_exemplar(exemplar, v)
        keep_exemplars(self)
        cdef Py_ssize_t i = self.slot(labels)
        self.add_at(i, v, is_int)
        cdef list exemplars = self.exemplars    # None if cleared meanwhile
        if exemplars is not None and i < len(exemplars):
            exemplars[i] = rendered
        return 0


cdef class GaugeCore(ScalarMetric):
    """A value that goes up and down."""

    cdef Metric blank(self):
        return GaugeCore.__new__(GaugeCore)

    cdef BoundSeries bound(self, tuple key):
        return GaugeSeries(self, key)

    def inc(self, labels):
        """Add 1 to the series for `labels`."""
        cdef Py_ssize_t i = self.slot(labels)
        self.add_at(i, 1.0, True)

    def dec(self, labels):
        """Subtract 1 from the series for `labels`."""
        cdef Py_ssize_t i = self.slot(labels)
        self.add_at(i, -1.0, True)

    def add(self, labels, value):
        """Add `value` (may be negative) to the series for `labels`."""
        cdef bint is_int
        cdef double v = to_number(value, "Gauge", &is_int)
        self.add_at(self.slot(labels), v, is_int)

    def sub(self, labels, value):
        """Subtract `value` from the series for `labels`."""
        cdef bint is_int
        cdef double v = to_number(value, "Gauge", &is_int)
        self.add_at(self.slot(labels), -v, is_int)
