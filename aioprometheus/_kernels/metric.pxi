# Metric: what every metric kind shares.
#
# Name, help text and const labels, plus the SeriesTable that turns a labels
# dict into a series number. Each kind subclass keeps its values in C arrays
# indexed by that number and implements the three storage hooks below.

cdef dict NO_LABELS = {}


cdef class Metric:
    """Base of the compiled metric kinds: identity plus the label -> series table."""

    cdef public str name
    cdef public object doc
    cdef public dict const_labels
    cdef SeriesTable series
    cdef Py_ssize_t capacity     # series the value arrays have room for
    cdef list objects            # a plain Collector's values (any objects); None for the kinds

    def __cinit__(self, *args, **kwargs):
        self.series = SeriesTable()
        self.const_labels = {}

    @property
    def reserved_label(self):
        """The one extra label name this kind keeps for itself (or None)."""
        return self.series.reserved

    # -- storage hooks, overridden by each kind -------------------------------

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Grow the value arrays to hold at least `n` series."""
        self.capacity = n
        return 0

    cdef int reset(self, Py_ssize_t series) except -1:
        """Give a new series its zero value."""
        if self.objects is not None:
            if series == len(self.objects):
                self.objects.append(None)
            else:
                self.objects[series] = None
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        """Copy series `src`'s values into number `dst` (removal compaction)."""
        if self.objects is not None:
            self.objects[dst] = self.objects[src]
        return 0

    # -- a plain Collector: one Python object per series ---------------------

    def _hold_objects(self):
        """Keep any object per series (what a plain aioprometheus Collector did)."""
        if self.objects is None:
            self.objects = [None] * self.series.count

    def _holds_objects(self):
        return self.objects is not None

    def _set_object(self, labels, value):
        self.objects[self.slot(labels)] = value

    def _get_object(self, labels):
        return self.objects[self.existing(labels)]

    cdef Py_ssize_t samples_per_series(self):
        """Sample lines one series exposes (encoders size their buffers from it)."""
        return 1

    # -- series lookup: the one path every hot method takes -------------------

    cdef inline dict as_labels(self, object labels):
        if labels is None:
            return NO_LABELS
        if type(labels) is not dict and not isinstance(labels, dict):
            raise TypeError(f"labels must be a dict, got {type(labels).__name__}")
        return <dict>labels

    cdef inline Py_ssize_t slot(self, object labels) except -1:
        """Series number for `labels`, creating the series on first use."""
        cdef dict d = self.as_labels(labels)
        cdef Py_hash_t h
        cdef Py_ssize_t i = self.series.find_hashed(d, &h)
        if i >= 0:
            return i
        return self.new_series(d, h)

    cdef Py_ssize_t new_series(self, dict labels, Py_hash_t h) except -1:
        cdef Py_ssize_t n = self.series.count
        cdef Py_ssize_t cap
        if n == self.capacity:
            cap = 4 if self.capacity < 4 else self.capacity * 2
            self.reserve(cap)
        n = self.series.add(labels, h)
        self.reset(n)
        return n

    cdef inline Py_ssize_t existing(self, object labels) except -1:
        """Series number for `labels`; KeyError if there is none."""
        cdef dict d = self.as_labels(labels)
        cdef Py_ssize_t i = self.series.find(d)
        if i < 0:
            raise KeyError(labels)
        return i

    # -- Python-facing helpers for the collectors layer -----------------------

    def _label_sets(self):
        """A fresh labels dict for every series, in series order."""
        return [self.series.labels_at(i) for i in range(self.series.count)]

    def _series_count(self):
        return self.series.count

    def _remove(self, labels):
        """Drop the series of `labels`; KeyError if it does not exist."""
        cdef Py_ssize_t gone = self.series.remove(self.as_labels(labels))
        if gone < 0:
            raise KeyError(labels)
        if gone != self.series.count:
            self.move(gone, self.series.count)
        if self.objects is not None:
            del self.objects[self.series.count:]

    def _clear(self):
        """Drop every series."""
        self.series.clear()
        if self.objects is not None:
            self.objects = []


# -- label order, shared by the encoders -------------------------------------
#
# A series is exposed with its own labels and the metric's const labels,
# merged and sorted by name; where both have a name, the series' value wins.

cdef list sorted_const_labels(Metric metric):
    """The const labels as [(name, value text), ...], sorted by name."""
    return sorted((k, label_text(v)) for k, v in (metric.const_labels or {}).items())


cdef enum:
    NEXT_SERIES_LABEL = 0    # emit flat[i], flat[i + 1]
    NEXT_CONST_LABEL = 1     # emit const label c
    NO_MORE_LABELS = 2


cdef inline int next_label(list const_names, tuple flat, Py_ssize_t* i, Py_ssize_t* c,
                           Py_ssize_t* at) except -1:
    """One step of the merged walk: which label comes next, and where it is
    (*at); advances *i (by 2) or *c past it, and past a shadowed const label."""
    cdef Py_ssize_t nflat = len(flat)
    cdef Py_ssize_t nconst = len(const_names)
    cdef str sname, cname
    if i[0] >= nflat and c[0] >= nconst:
        return NO_MORE_LABELS
    if i[0] < nflat and c[0] < nconst:
        sname = <str>flat[i[0]]
        cname = <str>const_names[c[0]]
        if cname < sname:
            at[0] = c[0]
            c[0] += 1
            return NEXT_CONST_LABEL
        if cname == sname:
            c[0] += 1
    elif c[0] < nconst:
        at[0] = c[0]
        c[0] += 1
        return NEXT_CONST_LABEL
    at[0] = i[0]
    i[0] += 2
    return NEXT_SERIES_LABEL


cdef Py_ssize_t buffer_estimate(metrics, Py_ssize_t bytes_per_sample):
    """A starting buffer size for encoding `metrics`, so the buffer rarely regrows."""
    cdef Py_ssize_t total = 4096
    for metric in metrics:
        if isinstance(metric, Metric):
            total += 256 + bytes_per_sample * (<Metric>metric).series.count * (
                <Metric>metric).samples_per_series()
    return total


cdef inline double to_number(object value, object what) except? -1.0:
    """Convert an observation to a double, or raise a TypeError that names it."""
    if type(value) is float:
        return PyFloat_AS_DOUBLE(value)
    if type(value) is int:
        return <double>value
    return to_number_slow(value, what)


cdef inline double to_observation(object value, str what) except? -1.0:
    """An observation (histogram, summary): a number, but not a bool."""
    if type(value) is bool:
        raise TypeError(f"{what} only works with digits (int, float), got {value!r}")
    return to_number(value, what)


cdef double to_number_slow(object value, object what) except? -1.0:
    """`what` names the metric kind: a str, or the metric (named only on error)."""
    try:
        return <double>value
    except TypeError:
        if not isinstance(what, str):
            what = type(what).__name__
        raise TypeError(f"{what} only works with digits (int, float), got {value!r}") from None
