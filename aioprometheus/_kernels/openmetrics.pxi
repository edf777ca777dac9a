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


cdef int write_openmetrics_header(Writer w, Metric m) except -1:
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
    return 0


def encode_openmetrics(metrics):
    """OpenMetrics text of `metrics` (in the order given), without the final
    ``# EOF`` line (the formatter ends the whole exposition with it)."""
    cdef list metrics_list = list(metrics)
    cdef Writer w = Writer(buffer_estimate(metrics_list, 48))
    cdef Writer lb = Writer(256)     # one series' labels, as text
    cdef SeriesChunk chunk
    w.openmetrics = True
    for metric in metrics_list:
        chunk = SeriesChunk()
        write_openmetrics_header(w, metric)
        if isinstance(metric, ScalarMetric):
            write_scalar_text(w, lb, chunk, metric, -1)
        elif isinstance(metric, HistogramCore):
            write_histogram_text(w, lb, chunk, metric, -1)
        else:
            write_summary_text(w, lb, chunk, metric, -1)
    return w.getvalue()


def openmetrics_header(Metric metric):
    """The HELP, TYPE (and UNIT) lines of `metric`'s family, as bytes."""
    cdef Writer w = Writer(256)
    write_openmetrics_header(w, metric)
    return w.getvalue()
