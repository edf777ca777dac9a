# Text exposition format 0.0.4, written straight from the series tables.
#
#   # HELP name help-with-\\-and-\n-escaped
#   # TYPE name counter
#   name{a="const",b="label"} 42
#
# Labels are sorted by name (const labels merged in, `le`/`quantile` in their
# place), as aioprometheus writes them.
# Label values escape \\, \" and \n. Sample values are written as
# aioprometheus 23.12 wrote them, which Prometheus reads exactly: integer
# series as integers, float series as Python's repr of the float ("1.0",
# "1e+20", "inf", "nan"); histogram samples are floats, a summary's count an
# integer. Histogram buckets come in bound order ending at le="+Inf"
# (== _count); summary quantiles in increasing order.
#
# The series loops call no Python code (every stored label is an exact str
# and HELP text is checked when set), so no other thread or re-entrant call
# can change a metric while it is being written. Labels are read a chunk of
# series at a time, as UTF-8 pointers into their label tuples (SeriesChunk);
# the lines are then written from those pointers alone, and for a private
# snapshot (snapshot.pxi) without the GIL: the event loop runs meanwhile, and
# the encoder never waits for it.

cdef extern from "<sched.h>" nogil:
    int sched_yield()

ctypedef struct Utf8:
    const char* data
    Py_ssize_t size

cdef enum:
    # Series whose labels are gathered per GIL hold. Large enough that the
    # writing in between, without the GIL, lasts long enough (~0.1-2 ms) for
    # a thread waiting for the GIL to wake and take it: released and retaken
    # at once, the GIL goes back to the encoder and the waiter waits out
    # its 5 ms switch interval. The gathering with the GIL: ~0.1 ms.
    CHUNK_SERIES = 2048


cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(PyObject* o)
    void* PyUnicode_DATA(PyObject* o)
    Py_ssize_t PyUnicode_GET_LENGTH(PyObject* o)


cdef inline int set_utf8(Utf8* out, PyObject* text) except -1:
    """Where the UTF-8 of `text` (an exact str) is: its own characters when ASCII."""
    if PyUnicode_IS_COMPACT_ASCII(text):
        out.data = <const char*>PyUnicode_DATA(text)
        out.size = PyUnicode_GET_LENGTH(text)
    else:
        out.data = PyUnicode_AsUTF8AndSize(<object>text, &out.size)
    return 0


cdef inline int utf8_cmp(const Utf8* a, const Utf8* b) noexcept nogil:
    """The order of two texts (UTF-8 byte order is code point order, as for str)."""
    cdef Py_ssize_t n = a.size if a.size < b.size else b.size
    cdef int order = memcmp(a.data, b.data, n)
    if order != 0:
        return order
    return (a.size > b.size) - (a.size < b.size)


@cython.final
cdef class TextFamily:
    """Per-family state, encoded once per scrape: the metric's name, its const
    labels, the label a bucket/quantile line adds (`le`, `quantile`) and that
    label's texts (`le="0.5"`, one per bucket or quantile)."""

    cdef bytes name_bytes
    cdef Utf8 name
    cdef tuple const_key          # name-sorted (name, text, ...); const_texts point into it
    cdef Utf8* const_texts
    cdef Py_ssize_t nconst
    cdef bint has_extra           # False for counters and gauges
    cdef str extra_name           # kept alive: extra points into it
    cdef Utf8 extra
    cdef list extra_lines         # bytes: `le="0.5"` ...; extras point into them
    cdef Utf8* extras

    def __cinit__(self, Metric metric, str extra_name=None, list extra_lines=None,
                  str name=None):
        cdef Py_ssize_t k
        self.name_bytes = (metric.name if name is None else name).encode()
        self.name.data = self.name_bytes
        self.name.size = len(self.name_bytes)
        self.const_key = metric.const_key
        self.const_texts = <Utf8*>malloc((len(self.const_key) + 1) * sizeof(Utf8))
        self.extra_lines = extra_lines if extra_lines is not None else []
        self.extras = <Utf8*>malloc((len(self.extra_lines) + 1) * sizeof(Utf8))
        if self.const_texts == NULL or self.extras == NULL:
            raise MemoryError()
        for k in range(len(self.const_key)):
            set_utf8(&self.const_texts[k], PyTuple_GET_ITEM(self.const_key, k))
        self.nconst = len(self.const_key) // 2
        for k in range(len(self.extra_lines)):
            self.extras[k].data = <bytes>self.extra_lines[k]
            self.extras[k].size = len(<bytes>self.extra_lines[k])
        self.extra_name = extra_name
        self.has_extra = extra_name is not None
        if self.has_extra:
            set_utf8(&self.extra, <PyObject*>extra_name)

    def __dealloc__(self):
        free(self.const_texts)
        free(self.extras)


@cython.final
cdef class SeriesChunk:
    """The label texts of a run of series, as UTF-8 pointers into their
    label tuples: valid while those stay alive and unchanged (a snapshot's,
    or a live metric's while no Python code runs)."""

    cdef Utf8* texts            # names and values of every series, in order
    cdef Py_ssize_t* starts     # series first+k: texts[starts[k]:starts[k + 1]]
    cdef Py_ssize_t texts_capacity
    cdef Py_ssize_t first
    cdef Py_ssize_t end

    def __cinit__(self):
        self.texts_capacity = 1024     # grown by gather as needed
        self.texts = <Utf8*>malloc(self.texts_capacity * sizeof(Utf8))
        self.starts = <Py_ssize_t*>malloc((CHUNK_SERIES + 1) * sizeof(Py_ssize_t))
        if self.texts == NULL or self.starts == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.texts)
        free(self.starts)

    cdef int gather(self, SeriesTable table, Py_ssize_t first, Py_ssize_t limit) except -1:
        """Read the labels of series first.. (at most `limit`, up to CHUNK_SERIES)."""
        cdef Py_ssize_t end = first + (limit if limit < CHUNK_SERIES else CHUNK_SERIES)
        cdef Py_ssize_t used = 0
        cdef Py_ssize_t s, k, n
        cdef Utf8* grown
        cdef PyObject* flat       # borrowed: nothing here runs Python code
        if end > table.count:
            end = table.count
        for s in range(first, end):
            self.starts[s - first] = used
            flat = PyList_GET_ITEM(table.label_sets, s)
            n = PyTuple_GET_SIZE(<object>flat)
            if used + n > self.texts_capacity:
                grown = <Utf8*>realloc(self.texts, 2 * (used + n) * sizeof(Utf8))
                if grown == NULL:
                    raise MemoryError()
                self.texts = grown
                self.texts_capacity = 2 * (used + n)
            for k in range(n):
                set_utf8(&self.texts[used + k], PyTuple_GET_ITEM(<object>flat, k))
            used += n
        self.starts[end - first] = used
        self.first = first
        self.end = end
        return 0

    cdef int fill(self, Writer text, TextFamily fam, Py_ssize_t series,
                  Py_ssize_t* split) except -1 nogil:
        """`name="value",` for each label of `series` and the const labels,
        merged by name (a series label shadows a const label of its name),
        into `text`; *split: the bytes that sort before the family's extra label."""
        cdef const Utf8* own = self.texts + self.starts[series - self.first]
        cdef Py_ssize_t nown = self.starts[series - self.first + 1] - self.starts[series - self.first]
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t c = 0
        cdef const Utf8* pair
        cdef int order
        text.length = 0
        split[0] = -1
        while i < nown or c < fam.nconst:
            if i >= nown:
                order = -1
            elif c >= fam.nconst:
                order = 1
            else:
                order = utf8_cmp(&fam.const_texts[2 * c], &own[i])
            if order < 0:
                pair = &fam.const_texts[2 * c]
                c += 1
            else:
                if order == 0:
                    c += 1
                pair = &own[i]
                i += 2
            if split[0] < 0 and fam.has_extra and utf8_cmp(&pair[0], &fam.extra) > 0:
                split[0] = text.length
            text.write(pair[0].data, pair[0].size)
            text.write(b'="', 2)
            text.write_escaped_utf8(pair[1].data, pair[1].size, True)
            text.write(b'",', 2)
        if split[0] < 0:
            split[0] = text.length
        return 0


cdef int write_sample(Writer w, TextFamily fam, const char* suffix, Writer labels,
                      Py_ssize_t split, const Utf8* extra, double value, bint as_int,
                      long long timestamp_ms) except -1 nogil:
    """One sample line: name+suffix, {labels, the extra label in name order},
    value (an integer when `as_int`), optional timestamp."""
    # room for the whole line at once (a number takes at most 32 bytes)
    w.reserve(fam.name.size + 16 + labels.length + (extra.size if extra != NULL else 0) + 80)
    w.write(fam.name.data, fam.name.size)
    w.write(suffix, strlen(suffix))
    if labels.length or extra != NULL:
        w.write_byte(b'{')
        if extra == NULL:
            w.write(labels.data, labels.length)
        else:
            w.write(labels.data, split)
            w.write(extra.data, extra.size)
            w.write_byte(b',')
            w.write(labels.data + split, labels.length - split)
        w.data[w.length - 1] = b'}'              # over the last label's comma
    w.write_byte(b' ')
    w.write_number(value, as_int)
    if timestamp_ms >= 0:
        w.write_byte(b' ')
        w.write_int(timestamp_ms)
    w.write_byte(b'\n')
    return 0


cdef bytes extra_label(str name, double bound):
    """`name="<bound>"` as aioprometheus spells it: str(float), with +Inf/-Inf."""
    cdef str text
    if bound == INFINITY:
        text = "+Inf"
    elif bound == -INFINITY:
        text = "-Inf"
    else:
        text = str(bound)
    return f'{name}="{text}"'.encode()


cdef int write_header(Writer w, Metric metric, const char* kind) except -1:
    w.write(b"# HELP ", 7)
    w.write_text(metric.metric_name)
    w.write_byte(b' ')
    w.write_escaped(metric.doc_text, False)
    w.write(b"\n# TYPE ", 8)
    w.write_text(metric.metric_name)
    w.write_byte(b' ')
    w.write(kind, strlen(kind))
    w.write_byte(b'\n')
    return 0


cdef int scalar_lines(Writer w, Writer lb, SeriesChunk chunk, TextFamily fam, ScalarMetric m,
                      long long ts) except -1 nogil:
    """The lines of the series gathered in `chunk`."""
    cdef Py_ssize_t s, split
    for s in range(chunk.first, chunk.end):
        chunk.fill(lb, fam, s, &split)
        write_sample(w, fam, b"", lb, split, NULL, m.values[s], not m.is_float[s], ts)
    return 0


cdef int write_scalar_text(Writer w, Writer lb, SeriesChunk chunk, ScalarMetric m,
                           long long ts) except -1:
    cdef TextFamily fam = TextFamily(m)
    while chunk.end < m.series.count:
        chunk.gather(m.series, chunk.end, CHUNK_SERIES)
        if m.is_snapshot:
            with nogil:
                scalar_lines(w, lb, chunk, fam, m, ts)
                sched_yield()   # a woken waiter on this core gets to take the GIL
        else:
            scalar_lines(w, lb, chunk, fam, m, ts)
    return 0


cdef int histogram_lines(Writer w, Writer lb, SeriesChunk chunk, TextFamily fam,
                         HistogramCore m, long long ts) except -1 nogil:
    """The lines of the series gathered in `chunk`."""
    cdef Py_ssize_t s, split, b
    cdef unsigned long long running
    cdef unsigned long long* row
    for s in range(chunk.first, chunk.end):
        chunk.fill(lb, fam, s, &split)
        row = m.counts + s * m.nbounds
        running = 0
        for b in range(m.nbounds):
            running += row[b]
            write_sample(w, fam, b"_bucket", lb, split, &fam.extras[b], <double>running,
                         False, ts)
        write_sample(w, fam, b"_count", lb, split, NULL, <double>running, False, ts)
        write_sample(w, fam, b"_sum", lb, split, NULL, m.sums[s], False, ts)
    return 0


cdef TextFamily histogram_family(HistogramCore m):
    """The family of a histogram's lines: `le` bounds as extra labels."""
    return TextFamily(m, "le", [extra_label("le", m.bounds[b]) for b in range(m.nbounds)])


cdef int write_histogram_text(Writer w, Writer lb, SeriesChunk chunk, HistogramCore m,
                              long long ts) except -1:
    cdef TextFamily fam = histogram_family(m)
    while chunk.end < m.series.count:
        chunk.gather(m.series, chunk.end, CHUNK_SERIES)
        if m.is_snapshot:
            with nogil:
                histogram_lines(w, lb, chunk, fam, m, ts)
                sched_yield()   # a woken waiter on this core gets to take the GIL
        else:
            histogram_lines(w, lb, chunk, fam, m, ts)
    return 0


cdef int write_summary_text(Writer w, Writer lb, SeriesChunk chunk, SummaryCore m,
                            long long ts, TextFamily created=None) except -1:
    """The summary's lines; with `created` (OpenMetrics), each series'
    `_created` line under that family's name."""
    cdef tuple phis = m.phis_sorted
    cdef TextFamily fam = TextFamily(
        m, "quantile", [extra_label("quantile", phi) for phi in phis])
    cdef Py_ssize_t s, split, q
    cdef QuantileEstimator est
    while chunk.end < m.series.count:
        # one series at a time, with the GIL: the estimators are objects
        chunk.gather(m.series, chunk.end, 1)
        s = chunk.first
        chunk.fill(lb, fam, s, &split)
        est = m.estimator_at(s)
        for q in range(len(phis)):
            write_sample(w, fam, b"", lb, split, &fam.extras[q], est.query(phis[q]),
                         False, ts)
        write_sample(w, fam, b"_count", lb, split, NULL, <double>m.counts[s], True, ts)
        write_sample(w, fam, b"_sum", lb, split, NULL, m.sums[s], False, ts)
        if created is not None:
            write_sample(w, created, b"_created", lb, split, NULL, m.created[s], False, ts)
        share_gil(m.is_snapshot, w)
    return 0


cdef Writer text_writer(list metrics, object emit):
    """The Writer a text encoder (this one, OpenMetrics) writes `metrics`
    into: handing each block to `emit` as it fills when every metric is a
    snapshot (the sink is Python code, which a walk over live metrics must
    never run)."""
    cdef Writer w = Writer(buffer_estimate(metrics, 48))
    if emit is not None and all_snapshots(metrics):
        w.stream_to(emit)
    return w


def encode_text(metrics, long long timestamp_ms=-1, emit=None):
    """Text exposition of `metrics` (in the order given) as bytes; with
    `emit`, handed to it in consecutive blocks instead (each as soon as it
    is written when every metric is a snapshot), and None returned.

    `timestamp_ms` >= 0 is appended to every sample.
    """
    cdef list metrics_list = list(metrics)
    cdef Writer w = text_writer(metrics_list, emit)
    cdef Writer lb = Writer(256)     # one series' labels, as text
    cdef SeriesChunk chunk = SeriesChunk()
    for metric in metrics_list:
        chunk.first = chunk.end = 0
        if isinstance(metric, CounterCore):
            write_header(w, metric, b"counter")
            write_scalar_text(w, lb, chunk, metric, timestamp_ms)
        elif isinstance(metric, GaugeCore):
            write_header(w, metric, b"gauge")
            write_scalar_text(w, lb, chunk, metric, timestamp_ms)
        elif isinstance(metric, HistogramCore):
            write_header(w, metric, b"histogram")
            write_histogram_text(w, lb, chunk, metric, timestamp_ms)
        elif isinstance(metric, SummaryCore):
            write_header(w, metric, b"summary")
            write_summary_text(w, lb, chunk, metric, timestamp_ms)
        else:
            raise TypeError(f"Not a metric the text format can encode: {metric!r}")
    return hand_over(w, emit)
