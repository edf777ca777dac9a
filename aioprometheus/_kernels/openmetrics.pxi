# OpenMetrics 1.0 text exposition, written with the text format's series
# walk (text.pxi): the sample lines are the ones text 0.0.4 writes, so
# Prometheus stores the very same series whichever of the two it negotiates.
# What differs is around them:
#
#   # HELP family help-with-\\-\n-and-\"-escaped
#   # TYPE family counter
#   # UNIT family seconds
#   family_total{a="b"} 42
#   ...
#   # EOF                   (written by the formatter, after every family)
#
# - A family is named without its samples' suffix: a counter `x_total` is
#   family `x`, an info gauge `x_info` family `x`.
# - A counter whose name does not end in `_total` is exposed as `unknown`
#   under its own name. OpenMetrics would name its sample `x_total`, and
#   Prometheus would then store a series other than the one text 0.0.4 gave
#   it: dashboards written against aioprometheus 23.12 would lose it.
# - Numbers are spelled as text 0.0.4 spells them, except the non-finite
#   ones: +Inf, -Inf and NaN.


cpdef tuple openmetrics_family(Metric m):
    """(family name, OpenMetrics type) of `m`."""
    cdef str name = m.metric_name
    if m.openmetrics_kind == "info" and name.endswith("_info"):
        return name[:-5], "info"
    if m.openmetrics_kind is not None:
        return name, m.openmetrics_kind
    if isinstance(m, CounterCore):
        if name.endswith("_total"):
            return name[:-6], "counter"
        return name, "unknown"
    if isinstance(m, GaugeCore):
        return name, "gauge"
    if isinstance(m, HistogramCore):
        return name, "histogram"
    if isinstance(m, SummaryCore):
        return name, "summary"
    raise TypeError(f"Not a metric OpenMetrics can encode: {m!r}")


cdef tuple write_openmetrics_header(Writer w, Metric m):
    """The family's HELP, TYPE and UNIT lines; returns (its name, its type)."""
    cdef str family
    cdef str kind
    family, kind = openmetrics_family(m)
    w.write(b"# HELP ", 7)
    w.write_text(family)
    w.write_byte(b' ')
    w.write_escaped(m.doc_text, True)
    w.write(b"\n# TYPE ", 8)
    w.write_text(family)
    w.write_byte(b' ')
    w.write_text(kind)
    if m.unit_text:
        w.write(b"\n# UNIT ", 8)
        w.write_text(family)
        w.write_byte(b' ')
        w.write_text(m.unit_text)
    w.write_byte(b'\n')
    return family, kind


cdef int append_exemplar(Writer w, object exemplar) except -1:
    """Put a rendered exemplar (exemplar.pxi) at the end of the line just
    written, before its newline; None writes nothing."""
    cdef bytes text
    if exemplar is not None:
        text = <bytes>(<tuple>exemplar)[0]
        w.length -= 1
        w.write(text, len(text))
        w.write_byte(b'\n')
    return 0


cdef int write_counter_openmetrics(Writer w, Writer lb, SeriesChunk chunk, CounterCore m,
                                   TextFamily created) except -1:
    """A counter's lines, each with its series' latest exemplar, and with
    `created` (the family's name) its `_created` line (with the GIL: the
    exemplars are objects)."""
    cdef TextFamily fam = TextFamily(m)
    cdef list exemplars = m.exemplars
    cdef Py_ssize_t s, split
    while chunk.end < m.series.count:
        chunk.gather(m.series, chunk.end, CHUNK_SERIES)
        for s in range(chunk.first, chunk.end):
            chunk.fill(lb, fam, s, &split)
            write_sample(w, fam, b"", lb, split, NULL, m.values[s], not m.is_float[s], -1)
            if exemplars is not None:
                append_exemplar(w, exemplars[s])
            if created is not None:
                write_sample(w, created, b"_created", lb, split, NULL, m.created[s], False, -1)
    return 0


cdef int write_histogram_openmetrics(Writer w, Writer lb, SeriesChunk chunk, HistogramCore m,
                                     TextFamily created) except -1:
    """A histogram's lines, each bucket with its latest exemplar, and with
    `created` its `_created` line (with the GIL: the exemplars are objects)."""
    cdef TextFamily fam = histogram_family(m)
    cdef list exemplars = m.exemplars
    cdef Py_ssize_t s, split, b
    cdef unsigned long long running
    cdef unsigned long long* row
    cdef object bucket_exemplars = None
    while chunk.end < m.series.count:
        chunk.gather(m.series, chunk.end, CHUNK_SERIES)
        for s in range(chunk.first, chunk.end):
            chunk.fill(lb, fam, s, &split)
            row = m.counts + s * m.nbounds
            if exemplars is not None:
                bucket_exemplars = exemplars[s]
            running = 0
            for b in range(m.nbounds):
                running += row[b]
                write_sample(w, fam, b"_bucket", lb, split, &fam.extras[b], <double>running,
                             False, -1)
                if bucket_exemplars is not None:
                    append_exemplar(w, (<list>bucket_exemplars)[b])
            write_sample(w, fam, b"_count", lb, split, NULL, <double>running, False, -1)
            write_sample(w, fam, b"_sum", lb, split, NULL, m.sums[s], False, -1)
            if created is not None:
                write_sample(w, created, b"_created", lb, split, NULL, m.created[s], False, -1)
    return 0


def encode_openmetrics(metrics, bint created=False, emit=None):
    """OpenMetrics text of `metrics` (in the order given), without the final
    ``# EOF`` line (the formatter ends the whole exposition with it); with
    `created`, the `_created` line of every counter, histogram and summary
    series; with `emit`, handed to it in blocks as encode_text does."""
    cdef list metrics_list = list(metrics)
    cdef Writer w = text_writer(metrics_list, emit)
    cdef Writer lb = Writer(256)     # one series' labels, as text
    cdef SeriesChunk chunk = SeriesChunk()
    cdef str family, family_type
    cdef TextFamily created_family
    w.openmetrics = True
    if created:
        for metric in metrics_list:
            if (isinstance(metric, Metric) and (<Metric>metric).series.count
                    and (<Metric>metric).created == NULL):
                raise ValueError("_created lines need a snapshot taken with created=True")
    for metric in metrics_list:
        chunk.first = chunk.end = 0
        family, family_type = write_openmetrics_header(w, metric)
        created_family = None
        if created and family_type in ("counter", "histogram", "summary"):
            created_family = TextFamily(metric, name=family)
        if family_type == "counter" and (
                created_family is not None or (<Metric>metric).exemplars is not None):
            write_counter_openmetrics(w, lb, chunk, metric, created_family)
        elif family_type == "histogram" and (
                created_family is not None or (<Metric>metric).exemplars is not None):
            write_histogram_openmetrics(w, lb, chunk, metric, created_family)
        elif isinstance(metric, ScalarMetric):
            write_scalar_text(w, lb, chunk, metric, -1)
        elif isinstance(metric, HistogramCore):
            write_histogram_text(w, lb, chunk, metric, -1)
        else:
            write_summary_text(w, lb, chunk, metric, -1, created_family)
    return hand_over(w, emit)


def openmetrics_header(Metric metric):
    """The HELP, TYPE (and UNIT) lines of `metric`'s family, as bytes."""
    cdef Writer w = Writer(256)
    write_openmetrics_header(w, metric)
    return w.getvalue()
