# Snapshot: metrics copied in one go, for encoding away from the event loop.
#
# Encoding a big registry takes milliseconds. On the live metrics it must
# hold the GIL throughout, since any release would let other threads change
# what is being written. A snapshot shares each metric's list of label sets
# (the live table only appends to it while it is shared, see
# SeriesTable.own_label_sets) and copies its C value arrays, with the garbage
# collector paused so no Python code runs in between: a consistent view of
# all the metrics at one instant, for the cost of a memcpy of the values.
# Nothing else can reach the copies, so their encoding may let other threads
# run: the text encoder writes without the GIL (text.pxi); the protobuf one,
# and the text of summaries, let other threads in every SHARE_GIL_EVERY bytes.

cdef enum:
    SHARE_GIL_EVERY = 128 * 1024   # bytes encoded between two GIL releases (~0.3 ms)
    SHARE_GIL_PAUSE_US = 50        # how long the encoder stays off the GIL then


def snapshot(metrics, bint created=True):
    """Private copies of the compiled `metrics` (in order), taken together;
    anything else in `metrics` is passed through as it is. Without
    `created`, the copies leave out when each series was created (only
    OpenMetrics' `_created` lines read it): 28% less to copy on the event
    loop for counters and histograms (10.8 -> 7.5 ms for 100k + 10k series
    after a second idle, when memory is slow to wake)."""
    cdef list items = list(metrics)
    cdef list copies = []
    with PausedGC():
        for metric in items:
            if isinstance(metric, (ScalarMetric, HistogramCore, SummaryCore)):
                copies.append((<Metric>metric).detached(created))
            else:
                copies.append(metric)
    return copies


cdef inline int share_gil(bint allowed, Writer w) except -1:
    """Between series of a snapshot, now and then, let other threads (the
    event loop) take the GIL.

    Releasing and retaking it at once would not do: a thread waiting for the
    GIL only forces a switch when no other thread took it during its switch
    interval, so a quick release-retake loop starves it. A short pause off
    the GIL lets a waiting thread in."""
    if allowed and w.length - w.shared_at >= SHARE_GIL_EVERY:
        w.shared_at = w.length
        with nogil:
            usleep(SHARE_GIL_PAUSE_US)
    return 0
