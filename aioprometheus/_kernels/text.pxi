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
# can change a metric while it is being written.

cdef class TextFamily:
    """Per-family state, encoded once per scrape: the metric's name, its const
    labels, and the label a bucket/quantile line adds (`le`, `quantile`)."""

    cdef bytes name
    cdef list const_names        # sorted by name
    cdef list const_values       # their value texts, same order
    cdef str extra_name          # None for counters and gauges

    def __cinit__(self, Metric metric, str extra_name=None):
        self.name = metric.name.encode()
        self.const_names = list(metric.const_key[0::2])   # const_key is name-sorted
        self.const_values = list(metric.const_key[1::2])
        self.extra_name = extra_name


cdef class SeriesLabels:
    """One series' labels as text: `name="value",` for each, in the merged
    order (next_label), and where the family's extra label goes among them."""

    cdef Writer text
    cdef Py_ssize_t split        # bytes of `text` that sort before the extra label

    def __cinit__(self):
        self.text = Writer(256)

    cdef int fill(self, TextFamily fam, tuple flat) except -1:
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t c = 0
        cdef Py_ssize_t at = 0
        cdef int which
        cdef str name
        cdef str value
        self.text.length = 0
        self.split = -1
        while True:
            which = next_label(fam.const_names, flat, &i, &c, &at)
            if which == NO_MORE_LABELS:
                break
            if which == NEXT_SERIES_LABEL:
                name = <str>flat[at]
                value = <str>flat[at + 1]
            else:
                name = <str>fam.const_names[at]
                value = <str>fam.const_values[at]
            if self.split < 0 and fam.extra_name is not None and name > fam.extra_name:
                self.split = self.text.length
            self.text.write_text(name)
            self.text.write(b'="', 2)
            self.text.write_escaped(value, True)
            self.text.write(b'",', 2)
        if self.split < 0:
            self.split = self.text.length
        return 0


cdef int write_sample(Writer w, TextFamily fam, const char* suffix, SeriesLabels labels,
                      bytes extra, double value, bint as_int, long long timestamp_ms) except -1:
    """One sample line: name+suffix, {labels, the extra label in name order},
    value (an integer when `as_int`), optional timestamp."""
    cdef Writer text = labels.text
    w.write(fam.name, len(fam.name))
    w.write(suffix, strlen(suffix))
    if text.length or extra is not None:
        w.write_byte(b'{')
        if extra is None:
            w.write(text.data, text.length)
        else:
            w.write(text.data, labels.split)
            w.write(extra, len(extra))
            w.write_byte(b',')
            w.write(text.data + labels.split, text.length - labels.split)
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


cdef int write_scalar_text(Writer w, SeriesLabels lb, ScalarMetric m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m)
    cdef Py_ssize_t i = 0
    while i < m.series.count:
        lb.fill(fam, m.series.key_at(i))
        write_sample(w, fam, b"", lb, None, m.values[i], not m.is_float[i], ts)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


cdef int write_histogram_text(Writer w, SeriesLabels lb, HistogramCore m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m, "le")
    cdef list les = [extra_label("le", m.bounds[b]) for b in range(m.nbounds)]
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t b
    cdef unsigned long long running
    cdef unsigned long long* row
    while i < m.series.count:
        lb.fill(fam, m.series.key_at(i))
        row = m.counts + i * m.nbounds
        running = 0
        for b in range(m.nbounds):
            running += row[b]
            write_sample(w, fam, b"_bucket", lb, <bytes>les[b], <double>running, False, ts)
        write_sample(w, fam, b"_count", lb, None, <double>running, False, ts)
        write_sample(w, fam, b"_sum", lb, None, m.sums[i], False, ts)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


cdef int write_summary_text(Writer w, SeriesLabels lb, SummaryCore m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m, "quantile")
    cdef tuple phis = m.phis_sorted
    cdef list quantile_labels = [extra_label("quantile", phi) for phi in phis]
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t q
    cdef QuantileEstimator est
    while i < m.series.count:
        lb.fill(fam, m.series.key_at(i))
        est = m.estimator_at(i)
        for q in range(len(phis)):
            write_sample(w, fam, b"", lb, <bytes>quantile_labels[q], est.query(phis[q]),
                         False, ts)
        write_sample(w, fam, b"_count", lb, None, <double>m.counts[i], True, ts)
        write_sample(w, fam, b"_sum", lb, None, m.sums[i], False, ts)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


def encode_text(metrics, long long timestamp_ms=-1):
    """Text exposition of `metrics` (in the order given) as bytes.

    `timestamp_ms` >= 0 is appended to every sample.
    """
    cdef list metrics_list = list(metrics)
    cdef Writer w = Writer(buffer_estimate(metrics_list, 48))
    cdef SeriesLabels lb = SeriesLabels()
    for metric in metrics_list:
        if isinstance(metric, CounterCore):
            write_header(w, metric, b"counter")
            write_scalar_text(w, lb, metric, timestamp_ms)
        elif isinstance(metric, GaugeCore):
            write_header(w, metric, b"gauge")
            write_scalar_text(w, lb, metric, timestamp_ms)
        elif isinstance(metric, HistogramCore):
            write_header(w, metric, b"histogram")
            write_histogram_text(w, lb, metric, timestamp_ms)
        elif isinstance(metric, SummaryCore):
            write_header(w, metric, b"summary")
            write_summary_text(w, lb, metric, timestamp_ms)
        else:
            raise TypeError(f"Not a metric the text format can encode: {metric!r}")
    return w.getvalue()
