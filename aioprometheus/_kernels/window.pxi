# Sliding-window quantiles: Summary(..., max_age_seconds=..., age_buckets=...).
#
# As in client_golang's summary: a ring of `age_buckets` estimators that all
# receive every observation. Time is cut into periods of max_age_seconds /
# age_buckets (counted from the clock's zero). When a period ends, the head of
# the ring, the oldest estimator, which answers queries, is cleared and the
# next oldest becomes the head. So the head holds exactly the observations
# made since the start of the period age_buckets - 1 periods back: the last
# max_age_seconds, less up to one period. Each estimator is the GK summary of
# quantiles.pxi over its own unbroken stretch of the stream, so its proven
# rank bound holds for the window it reports.
#
# A series' observations go to one buffer; a full buffer is sorted once and
# merged into every estimator. Rotation is lazy, on observe and on reads
# (get, encoders, snapshots): no background task. The clock is read in C,
# either the system's monotonic clock or a ManualClock a test advances, so
# nothing here calls Python code.

cdef extern from *:
    """
    #include <time.h>
    /* Seconds of a monotonic clock: the coarse one (resolution a few ms, a
       fraction of the cost) where the system has it, since windows span
       seconds to minutes. */
    static double aiop_monotonic_seconds(void) {
        struct timespec ts;
    #ifdef CLOCK_MONOTONIC_COARSE
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    #else
        clock_gettime(CLOCK_MONOTONIC, &ts);
    #endif
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    """
    double monotonic_seconds "aiop_monotonic_seconds"() noexcept nogil


@cython.final
cdef class ManualClock:
    """A monotonic clock that moves only when advanced: given to a windowed
    Summary in place of the system clock, it lets tests drive the rotation."""

    cdef double now

    def __cinit__(self, double start=0.0):
        if isnan(start) or isinf(start):
            raise ValueError(f"start must be a finite number of seconds, got {start!r}")
        self.now = start

    @property
    def seconds(self):
        """The time now, in seconds."""
        return self.now

    def advance(self, double seconds):
        """Move the clock `seconds` (finite, >= 0) forward."""
        if not 0.0 <= seconds < INFINITY:
            raise ValueError(f"a monotonic clock only moves forward, got {seconds!r}")
        self.now += seconds

    def __reduce__(self):
        return (ManualClock, (self.now,))


@cython.final
cdef class SlidingWindow:
    """One series' window: the ring of estimators, its head and its buffer."""

    cdef tuple ring               # QuantileEstimator objects, reached only from here
    cdef Py_ssize_t head          # ring position of the oldest: it answers queries
    cdef double period            # the period the ring is up to date with (-inf: none yet)
    cdef double* pending          # observations of that period not merged yet
    cdef Py_ssize_t npending
    cdef Py_ssize_t pending_cap

    def __cinit__(self, tuple ring, Py_ssize_t head=0, double period=-INFINITY):
        if not ring or not all(type(est) is QuantileEstimator for est in ring):
            raise TypeError("a window's ring must be a non-empty tuple of QuantileEstimator")
        if not 0 <= head < len(ring):
            raise ValueError(f"window head {head} is not a ring position")
        self.ring = ring
        self.head = head
        self.period = period

    def __dealloc__(self):
        free(self.pending)

    cdef inline QuantileEstimator at(self, Py_ssize_t position):
        return <QuantileEstimator>self.ring[position]

    cdef inline void insert(self, double value, double period) noexcept:
        """Add one observation made in `period`; NaN is ignored (as by the
        estimator: the Summary still counts it)."""
        if period != self.period:
            self.rotate(period)
        if value != value:
            return
        if self.npending >= self.pending_cap:
            if not self.make_room():
                return  # out of memory: the observation is dropped
        self.pending[self.npending] = value
        self.npending += 1

    cdef int make_room(self) noexcept:
        if grow_pending(&self.pending, &self.pending_cap, self.at(self.head).ntuples):
            return 1
        if self.npending == 0:
            return 0
        self.flush()
        return 1

    cdef void flush(self) noexcept:
        """Sort the buffer once and merge it into every estimator. (If memory
        runs out, an estimator misses the batch; its bound still holds for
        what it holds.)"""
        cdef Py_ssize_t position
        if self.npending == 0:
            return
        sort_doubles(self.pending, self.npending)
        for position in range(len(self.ring)):
            self.at(position).merge_sorted(self.pending, self.npending)
        self.npending = 0

    cdef void rotate(self, double period) noexcept:
        """Bring the ring up to `period`. An earlier period is ignored: the
        clock never goes back, so that reading lost a race with a newer one."""
        cdef double steps = period - self.period
        cdef Py_ssize_t size = len(self.ring)
        cdef Py_ssize_t position
        if not steps > 0.0:
            return
        if steps >= <double>size:
            # every estimator's stretch began before the window: start afresh
            self.npending = 0
            for position in range(size):
                self.at(position).clear()
        else:
            self.flush()
            for position in range(<Py_ssize_t>steps):
                self.at(self.head).clear()
                self.head = (self.head + 1) % size
        self.period = period

    cdef QuantileEstimator current(self, double period):
        """The estimator of the window as of `period`, all observations merged."""
        if period != self.period:
            self.rotate(period)
        self.flush()
        return self.at(self.head)

    cdef SlidingWindow copy(self):
        """An independent window in the same state (for snapshots)."""
        cdef SlidingWindow twin = SlidingWindow(
            tuple([self.at(position).copy() for position in range(len(self.ring))]),
            self.head, self.period)
        if self.npending:
            twin.pending = <double*>malloc(self.npending * sizeof(double))
            if twin.pending == NULL:
                raise MemoryError()
            memcpy(twin.pending, self.pending, self.npending * sizeof(double))
            twin.npending = twin.pending_cap = self.npending
        return twin

    def __reduce__(self):
        """Pickle and copy: the ring (estimators pickle themselves), head,
        period and buffer as they are."""
        pending = [self.pending[b] for b in range(self.npending)]
        return (restore_window, (self.ring, self.head, self.period, pending))


def restore_window(ring, head, period, pending):
    """Rebuild a pickled SlidingWindow."""
    cdef SlidingWindow window = SlidingWindow(tuple(ring), head, period)
    cdef list values = [float(v) for v in pending]
    for value in values:
        window.insert(value, window.period)
    return window


cdef SlidingWindow new_window(tuple invariants, Py_ssize_t age_buckets):
    return SlidingWindow(tuple([QuantileEstimator(invariants) for _ in range(age_buckets)]))


cdef tuple checked_window(object max_age_seconds, object age_buckets, object clock):
    """(max_age_seconds, age_buckets, period, clock) validated, or a clear error."""
    cdef double max_age
    cdef Py_ssize_t buckets
    if isinstance(max_age_seconds, (bool, str)):
        raise TypeError(f"max_age_seconds must be a number, got {max_age_seconds!r}")
    try:
        max_age = max_age_seconds
    except TypeError:
        raise TypeError(
            f"max_age_seconds must be a number, got {max_age_seconds!r}") from None
    if isinstance(age_buckets, bool) or not isinstance(age_buckets, int):
        raise TypeError(f"age_buckets must be an int, got {age_buckets!r}")
    if clock is not None and not isinstance(clock, ManualClock):
        raise TypeError(f"clock must be None or a ManualClock, got {clock!r}")
    if not 0.0 < max_age < INFINITY:
        raise ValueError(
            f"max_age_seconds must be finite and > 0, got {max_age_seconds!r}")
    if age_buckets < 1:
        raise ValueError(f"age_buckets must be >= 1, got {age_buckets!r}")
    buckets = age_buckets
    if not max_age / <double>buckets > 0.0:
        raise ValueError(
            f"max_age_seconds / age_buckets must be a positive number of seconds, "
            f"got {max_age_seconds!r} / {age_buckets!r}")
    return (max_age, buckets, max_age / <double>buckets, clock)
