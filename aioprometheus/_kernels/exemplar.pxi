# Exemplars: a trace id (or any small label set) kept beside a counter series
# or a histogram bucket, with the value and time of the observation that
# carried it, so a spike can be followed to a trace.
#
# An exemplar is rendered once, when it is given (`inc(labels,
# exemplar={"trace_id": ...})`), into what the encoders write: the end of an
# OpenMetrics sample line (` # {trace_id="..."} 0.25 1732550000.123`) and an
# io.prometheus.client.Exemplar message body. Each series (each bucket, for
# histograms) keeps only its latest, as (text, protobuf) bytes. Metrics that
# never got one carry no storage for them (Metric.exemplars stays None), and
# calls without one do no exemplar work at all.

cdef enum:
    EXEMPLAR_MAX_CODE_POINTS = 128   # names and values together (OpenMetrics 1.0)


cdef tuple rendered_exemplar(object labels, double value):
    """An exemplar, rendered for both encoders from its labels (a dict of str
    to str, 128 code points at most) and the observation's value, at the
    time now (to the millisecond):

    - for OpenMetrics, the end of a sample line: ` # {labels} value time`;
    - for protobuf, the body of an io.prometheus.client.Exemplar message.

    Raises TypeError or ValueError for anything but such a dict."""
    cdef list pairs = []
    cdef Py_ssize_t size = 0
    cdef long long ms = llround(wall_seconds() * 1000.0)
    cdef str name, text
    if not isinstance(labels, dict):
        raise TypeError(f"An exemplar is a dict of str to str, got {type(labels).__name__}")
    for name_object, value_object in PyDict_Items(labels):   # a snapshot of the dict
        check_label_name(name_object)
        if not isinstance(value_object, str):
            raise TypeError(f"Exemplar label values must be str, got {value_object!r}")
        name = exact_text(name_object)
        text = exact_text(value_object)
        check_utf8(text, "Exemplar label value")
        size += len(name) + len(text)
        pairs.append((name, text))
    if size > EXEMPLAR_MAX_CODE_POINTS:
        raise ValueError(
            f"Exemplar labels are {size} characters long (names and values), "
            f"more than the {EXEMPLAR_MAX_CODE_POINTS} OpenMetrics allows")
    pairs.sort()
    return (openmetrics_exemplar(pairs, value, ms), protobuf_exemplar(pairs, value, ms))


cdef bytes openmetrics_exemplar(list pairs, double value, long long ms):
    cdef Writer w = Writer(64)
    w.openmetrics = True
    w.write(b" # {", 4)
    for k in range(len(pairs)):
        if k:
            w.write_byte(b',')
        w.write_text(<str>pairs[k][0])
        w.write(b'="', 2)
        w.write_escaped(<str>pairs[k][1], True)
        w.write_byte(b'"')
    w.write(b"} ", 2)
    w.write_number(value, False)
    w.write_text(f" {ms // 1000}.{ms % 1000:03d}")
    return w.getvalue()


cdef bytes protobuf_exemplar(list pairs, double value, long long ms):
    """label = 1 (LabelPair), value = 2, timestamp = 3 (google.protobuf.Timestamp:
    seconds = 1, nanos = 2, each left out when 0, as proto3 does)."""
    cdef Writer w = Writer(64)
    cdef Py_ssize_t start
    cdef long long nanos = (ms % 1000) * 1000000
    for name, text in pairs:
        pb_label(w, name, text)
    pb_fixed64(w, TAG2_FIXED64, value)
    start = pb_open(w, TAG3_BYTES)
    if ms // 1000:
        pb_varint_field(w, TAG1_VARINT, <unsigned long long>(ms // 1000))
    if nanos:
        pb_varint_field(w, TAG2_VARINT, <unsigned long long>nanos)
    pb_close(w, start)
    return w.getvalue()


cdef int keep_exemplars(Metric m) except -1:
    """Give `m` its per-series exemplar list (once). The GC is paused while
    it is made, so the series count it is made for is still the count."""
    if m.exemplars is None:
        with PausedGC():
            if m.exemplars is None:
                m.exemplars = [None] * m.series.count
    return 0
