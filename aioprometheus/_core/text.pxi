# Text exposition format 0.0.4, written straight from the series tables.
#
#   # HELP name help-with-\\-and-\n-escaped
#   # TYPE name counter
#   name{const="a",label="b"} 42
#
# Label values escape \\, \" and \n; values are exact integers when whole,
# shortest round-trip floats otherwise, and NaN/+Inf/-Inf. Histogram buckets
# come in bound order ending at le="+Inf" (== _count); summary quantiles in
# increasing order.

cdef class TextFamily:
    """Per-family scratch state: the metric's name and its const labels, encoded once."""

    cdef bytes name
    cdef list const_pairs        # [(name, value_text), ...] sorted by name

    def __cinit__(self, Metric metric):
        self.name = metric.name.encode()
        self.const_pairs = sorted(
            (k, label_text(v)) for k, v in (metric.const_labels or {}).items())


cdef int write_label(Writer w, str name, object value, bint first) except -1:
    if not first:
        w.write_byte(b',')
    w.write_text(name)
    w.write(b'="', 2)
    w.write_escaped(label_text(value), True)
    w.write_byte(b'"')
    return 0


cdef int write_series_labels(Writer out, TextFamily fam, tuple flat) except -1:
    """Into `out` (emptied first): the series' labels, const ones first, no braces."""
    cdef Py_ssize_t i
    cdef bint first = True
    out.length = 0
    for name, value in fam.const_pairs:
        for i in range(0, len(flat), 2):
            if flat[i] == name:
                break
        else:
            write_label(out, name, value, first)
            first = False
    for i in range(0, len(flat), 2):
        write_label(out, flat[i], flat[i + 1], first)
        first = False
    return 0


cdef int write_sample(Writer w, TextFamily fam, const char* suffix, Writer labels,
                      bytes extra, double value, long long timestamp_ms) except -1:
    """One sample line: name+suffix, {labels[,extra]}, value, optional timestamp."""
    w.write(fam.name, len(fam.name))
    w.write(suffix, strlen(suffix))
    if labels.length or extra is not None:
        w.write_byte(b'{')
        w.write(labels.data, labels.length)
        if extra is not None:
            if labels.length:
                w.write_byte(b',')
            w.write(extra, len(extra))
        w.write_byte(b'}')
    w.write_byte(b' ')
    w.write_double(value)
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
    w.write_text(metric.name)
    w.write_byte(b' ')
    w.write_escaped(str(metric.doc), False)
    w.write(b"\n# TYPE ", 8)
    w.write_text(metric.name)
    w.write_byte(b' ')
    w.write(kind, strlen(kind))
    w.write_byte(b'\n')
    return 0


cdef int write_scalar_text(Writer w, Writer lb, ScalarMetric m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m)
    cdef Py_ssize_t i
    for i in range(m.series.count):
        write_series_labels(lb, fam, m.series.items_at(i))
        write_sample(w, fam, b"", lb, None, m.values[i], ts)
    return 0


cdef int write_histogram_text(Writer w, Writer lb, HistogramCore m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m)
    cdef list les = [extra_label("le", m.bounds[b]) for b in range(m.nbounds)]
    cdef Py_ssize_t i, b
    cdef unsigned long long running
    cdef unsigned long long* row
    for i in range(m.series.count):
        write_series_labels(lb, fam, m.series.items_at(i))
        row = m.counts + i * m.nbounds
        running = 0
        for b in range(m.nbounds):
            running += row[b]
            write_sample(w, fam, b"_bucket", lb, <bytes>les[b], <double>running, ts)
        write_sample(w, fam, b"_count", lb, None, <double>running, ts)
        write_sample(w, fam, b"_sum", lb, None, m.sums[i], ts)
    return 0


cdef int write_summary_text(Writer w, Writer lb, SummaryCore m, long long ts) except -1:
    cdef TextFamily fam = TextFamily(m)
    cdef tuple phis = m.phis_sorted
    cdef list quantile_labels = [extra_label("quantile", phi) for phi in phis]
    cdef Py_ssize_t i, q
    cdef QuantileEstimator est
    for i in range(m.series.count):
        write_series_labels(lb, fam, m.series.items_at(i))
        est = m.estimator_at(i)
        for q in range(len(phis)):
            write_sample(w, fam, b"", lb, <bytes>quantile_labels[q], est.query(phis[q]), ts)
        write_sample(w, fam, b"_count", lb, None, <double>m.counts[i], ts)
        write_sample(w, fam, b"_sum", lb, None, m.sums[i], ts)
    return 0


def encode_text(metrics, long long timestamp_ms=-1):
    """Text exposition of `metrics` (in the order given) as bytes.

    `timestamp_ms` >= 0 is appended to every sample.
    """
    metrics = list(metrics)
    cdef Writer w = Writer(buffer_estimate(metrics, 48))
    cdef Writer lb = Writer(256)
    for metric in metrics:
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
