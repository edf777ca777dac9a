# Prometheus protobuf exposition: a stream of io.prometheus.client.MetricFamily
# messages, each preceded by its byte length as a varint, written straight
# from the series tables (no protobuf message objects are built).
#
# The bytes are what the protobuf package's SerializeToString() produces for
# the same messages: fields in field-number order, and every field the
# encoder sets is present (proto2 presence), zero or not:
#
#   MetricFamily  name=1 help=2 type=3 metric=4 (repeated)
#   Metric        label=1 (repeated LabelPair name=1 value=2, sorted by name,
#                 const labels merged in, a series label overriding a const
#                 one), gauge=2 / counter=3 / summary=4 {value=1 or
#                 sample_count=1 sample_sum=2 quantile=3 {quantile=1 value=2}},
#                 timestamp_ms=6 (when asked for), histogram=7
#                 {sample_count=1 sample_sum=2 bucket=3 {cumulative_count=1
#                 upper_bound=2}}, every bucket including +Inf, then the
#                 native fields 5-13 (native.pxi).
#
# Nested messages are length-prefixed by back-patching: one byte is reserved
# for the length, the body is written, and if the length needs more than one
# varint byte the body is moved up to make room.

# wire tags: (field number << 3) | wire type; 0 varint, 1 fixed64, 2 length-delimited
cdef enum:
    TAG1_VARINT = 0x08
    TAG1_FIXED64 = 0x09
    TAG1_BYTES = 0x0A
    TAG2_VARINT = 0x10
    TAG2_FIXED64 = 0x11
    TAG2_BYTES = 0x12
    TAG3_VARINT = 0x18
    TAG3_BYTES = 0x1A
    TAG4_BYTES = 0x22
    TAG6_VARINT = 0x30
    TAG7_BYTES = 0x3A

# MetricType enum values
cdef enum:
    PB_COUNTER = 0
    PB_GAUGE = 1
    PB_SUMMARY = 2
    PB_HISTOGRAM = 4


cdef inline int varint_size(unsigned long long v) noexcept:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline int pb_fixed64(Writer w, unsigned char tag, double value) except -1:
    """A double field: tag byte and the 8 little-endian bytes of the IEEE value."""
    cdef unsigned long long bits
    cdef char* out
    cdef int k
    memcpy(&bits, &value, 8)
    if w.length + 9 > w.capacity:
        w.reserve(9)
    out = w.data + w.length
    out[0] = <char>tag
    for k in range(8):
        out[1 + k] = <char>((bits >> (8 * k)) & 0xFF)
    w.length += 9
    return 0


cdef inline int pb_varint_field(Writer w, unsigned char tag, unsigned long long value) except -1:
    w.write_byte(<char>tag)
    return w.write_varint(value)


cdef inline int pb_utf8(Writer w, unsigned char tag, const char* utf8, Py_ssize_t n) except -1:
    w.write_byte(<char>tag)
    w.write_varint(<unsigned long long>n)
    return w.write(utf8, n)


cdef inline int pb_text(Writer w, unsigned char tag, str s) except -1:
    cdef Py_ssize_t n
    cdef const char* utf8 = PyUnicode_AsUTF8AndSize(s, &n)
    return pb_utf8(w, tag, utf8, n)


cdef inline Py_ssize_t pb_open(Writer w, unsigned char tag) except -1:
    """Start a length-delimited field; returns where its body begins."""
    if w.length + 2 > w.capacity:
        w.reserve(2)
    w.data[w.length] = <char>tag
    w.length += 2          # one byte reserved for the length
    return w.length


cdef int pb_close(Writer w, Py_ssize_t start) except -1:
    """Back-patch the length of the field opened at `start`."""
    cdef Py_ssize_t size = w.length - start
    cdef int n = varint_size(<unsigned long long>size)
    cdef unsigned long long v = <unsigned long long>size
    cdef char* out
    if n > 1:
        w.reserve(n - 1)
        memmove(w.data + start + n - 1, w.data + start, size)
        w.length += n - 1
    out = w.data + start - 1
    while v >= 0x80:
        out[0] = <char>((v & 0x7F) | 0x80)
        out += 1
        v >>= 7
    out[0] = <char>v
    return 0


cdef int pb_label(Writer w, str name, str value) except -1:
    """A LabelPair in field 1 of Metric."""
    cdef Py_ssize_t nn, nv
    cdef const char* name8 = PyUnicode_AsUTF8AndSize(name, &nn)
    cdef const char* value8 = PyUnicode_AsUTF8AndSize(value, &nv)
    cdef Py_ssize_t body = 2 + varint_size(nn) + nn + varint_size(nv) + nv
    w.write_byte(TAG1_BYTES)
    w.write_varint(<unsigned long long>body)
    pb_utf8(w, TAG1_BYTES, name8, nn)
    return pb_utf8(w, TAG2_BYTES, value8, nv)


cdef class ProtoFamily:
    """Per-family state encoded once per scrape: the const labels, sorted by
    name, each already encoded as a complete Metric.label field."""

    cdef list const_names        # sorted
    cdef list const_fields       # bytes of each LabelPair field, same order

    def __cinit__(self, Metric metric):
        cdef Writer scratch
        cdef tuple key = metric.const_key     # name-sorted (name, text, ...)
        self.const_names = []
        self.const_fields = []
        for name, value in zip(key[0::2], key[1::2]):
            scratch = Writer(64)
            pb_label(scratch, name, value)
            self.const_names.append(name)
            self.const_fields.append(scratch.getvalue())

    cdef inline int write_const(self, Writer w, Py_ssize_t c) except -1:
        cdef bytes field = <bytes>self.const_fields[c]
        return w.write(field, len(field))


cdef int pb_labels(Writer w, ProtoFamily fam, tuple flat) except -1:
    """The series' labels merged with the const labels (next_label order)."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t c = 0
    cdef Py_ssize_t at = 0
    cdef int which
    while True:
        which = next_label(fam.const_names, flat, &i, &c, &at)
        if which == NO_MORE_LABELS:
            return 0
        if which == NEXT_SERIES_LABEL:
            pb_label(w, <str>flat[at], <str>flat[at + 1])
        else:
            fam.write_const(w, at)


cdef int pb_family_open(Writer w, Metric metric, int kind, Py_ssize_t* start) except -1:
    """Reserve the delimiting length and write name, help and type."""
    if w.length + 1 > w.capacity:
        w.reserve(1)
    w.length += 1                # one byte reserved for the delimiting length
    start[0] = w.length
    pb_text(w, TAG1_BYTES, metric.metric_name)
    pb_text(w, TAG2_BYTES, metric.doc_text)
    return pb_varint_field(w, TAG3_VARINT, <unsigned long long>kind)


cdef inline int pb_timestamp(Writer w, object timestamp_ms) except -1:
    if timestamp_ms is not None:
        pb_varint_field(w, TAG6_VARINT, <unsigned long long>(<long long>timestamp_ms))
    return 0


cdef int pb_exemplar(Writer w, unsigned char tag, object exemplar) except -1:
    """A rendered exemplar's (exemplar.pxi) message in field `tag`."""
    cdef bytes body = <bytes>(<tuple>exemplar)[1]
    w.write_byte(<char>tag)
    w.write_varint(<unsigned long long>len(body))
    return w.write(body, len(body))


cdef inline Py_ssize_t pb_exemplar_size(object exemplar) noexcept:
    """Bytes pb_exemplar writes (0 for none)."""
    cdef Py_ssize_t n
    if exemplar is None:
        return 0
    n = len(<bytes>(<tuple>exemplar)[1])
    return 1 + varint_size(<unsigned long long>n) + n


cdef int pb_scalar_metrics(Writer w, ScalarMetric m, unsigned char value_tag,
                           object timestamp_ms) except -1:
    cdef ProtoFamily fam = ProtoFamily(m)
    cdef list exemplars = m.exemplars     # counters only; None when none were given
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t metric_start
    cdef object exemplar
    while i < m.series.count:
        metric_start = pb_open(w, TAG4_BYTES)
        pb_labels(w, fam, m.series.key_at(i))
        exemplar = exemplars[i] if exemplars is not None else None
        w.write_byte(value_tag)  # Gauge (2) or Counter (3): value=1, exemplar=2
        w.write_varint(<unsigned long long>(9 + pb_exemplar_size(exemplar)))
        pb_fixed64(w, TAG1_FIXED64, m.values[i])
        if exemplar is not None:
            pb_exemplar(w, TAG2_BYTES, exemplar)
        pb_timestamp(w, timestamp_ms)
        pb_close(w, metric_start)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


cdef int pb_histogram_metrics(Writer w, HistogramCore m, object timestamp_ms) except -1:
    cdef ProtoFamily fam = ProtoFamily(m)
    cdef list exemplars = m.exemplars
    cdef object bucket_exemplars, exemplar
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t b, metric_start, body_start
    cdef unsigned long long running, total
    cdef unsigned long long* row
    while i < m.series.count:
        metric_start = pb_open(w, TAG4_BYTES)
        pb_labels(w, fam, m.series.key_at(i))
        pb_timestamp(w, timestamp_ms)
        body_start = pb_open(w, TAG7_BYTES)
        row = m.counts + i * m.nbounds
        total = 0
        for b in range(m.nbounds):
            total += row[b]
        pb_varint_field(w, TAG1_VARINT, total)
        pb_fixed64(w, TAG2_FIXED64, m.sums[i])
        running = 0
        bucket_exemplars = exemplars[i] if exemplars is not None else None
        # a native-only histogram has no classic buckets, as in client_golang
        for b in range(m.nbounds if m.native is None or m.nbounds > 1 else 0):
            running += row[b]
            exemplar = (<list>bucket_exemplars)[b] if bucket_exemplars is not None else None
            w.write_byte(TAG3_BYTES)   # Bucket: cumulative_count=1, upper_bound=2, exemplar=3
            w.write_varint(<unsigned long long>(
                1 + varint_size(running) + 9 + pb_exemplar_size(exemplar)))
            pb_varint_field(w, TAG1_VARINT, running)
            pb_fixed64(w, TAG2_FIXED64, m.bounds[b])
            if exemplar is not None:
                pb_exemplar(w, TAG3_BYTES, exemplar)
        if m.native is not None:
            pb_native_fields(w, m.native, i)
        pb_close(w, body_start)
        pb_close(w, metric_start)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


cdef int pb_summary_metrics(Writer w, SummaryCore m, object timestamp_ms) except -1:
    cdef ProtoFamily fam = ProtoFamily(m)
    cdef tuple phis = m.phis_sorted
    cdef Py_ssize_t nphi = len(phis)
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t q, metric_start, body_start
    cdef QuantileEstimator est
    while i < m.series.count:
        metric_start = pb_open(w, TAG4_BYTES)
        pb_labels(w, fam, m.series.key_at(i))
        body_start = pb_open(w, TAG4_BYTES)
        pb_varint_field(w, TAG1_VARINT, m.counts[i])
        pb_fixed64(w, TAG2_FIXED64, m.sums[i])
        est = m.estimator_at(i)
        for q in range(nphi):
            w.write_byte(TAG3_BYTES)   # Quantile: quantile=1, value=2
            w.write_byte(18)
            pb_fixed64(w, TAG1_FIXED64, <double>phis[q])
            pb_fixed64(w, TAG2_FIXED64, est.query(phis[q]))
        pb_close(w, body_start)
        pb_timestamp(w, timestamp_ms)
        pb_close(w, metric_start)
        i += 1
        share_gil(m.is_snapshot, w)
    return 0


def encode_protobuf(metrics, timestamp_ms=None):
    """Delimited protobuf exposition of `metrics` (in the order given) as bytes.

    Each metric becomes one length-prefixed io.prometheus.client.MetricFamily.
    `timestamp_ms` (an int, or None for none) is set on every Metric.
    """
    cdef list metrics_list = list(metrics)
    cdef Writer w = Writer(buffer_estimate(metrics_list, 32))
    cdef Py_ssize_t start
    if timestamp_ms is not None:
        timestamp_ms = int(timestamp_ms)
        if not -(1 << 63) <= timestamp_ms < (1 << 63):
            raise OverflowError("timestamp_ms does not fit in int64")
    for metric in metrics_list:
        if isinstance(metric, CounterCore):
            pb_family_open(w, metric, PB_COUNTER, &start)
            pb_scalar_metrics(w, metric, TAG3_BYTES, timestamp_ms)
        elif isinstance(metric, GaugeCore):
            pb_family_open(w, metric, PB_GAUGE, &start)
            pb_scalar_metrics(w, metric, TAG2_BYTES, timestamp_ms)
        elif isinstance(metric, HistogramCore):
            pb_family_open(w, metric, PB_HISTOGRAM, &start)
            pb_histogram_metrics(w, metric, timestamp_ms)
        elif isinstance(metric, SummaryCore):
            pb_family_open(w, metric, PB_SUMMARY, &start)
            pb_summary_metrics(w, metric, timestamp_ms)
        else:
            raise TypeError(f"Not a metric the protobuf format can encode: {metric!r}")
        pb_close(w, start)
    return w.getvalue()
