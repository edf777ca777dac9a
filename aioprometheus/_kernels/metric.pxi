# Metric: what every metric kind shares.
#
# Name, help text and const labels, plus the SeriesTable that turns a labels
# dict into a series number. Each kind subclass keeps its values in C arrays
# indexed by that number and implements the storage hooks below.
#
# Every public method first does whatever may call into Python code (label
# __str__, a number's __float__, allocating objects the garbage collector may
# finalize), then looks its series up afresh and commits in C. So a call
# applies whole or raises before it changed anything, whatever that Python
# code did to this or any other metric, in this thread or another.

import gc

cdef dict NO_LABELS = {}


cdef class PausedGC:
    """Keep the cyclic garbage collector from running (and finalizers with it)
    while a loop reads series as it allocates its result objects."""

    cdef bint was_enabled

    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()


cdef extern from *:
    """
    #include <time.h>
    /* Seconds since the epoch: when a series was created, when an exemplar
       was given. */
    static double aiop_wall_seconds(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    }
    """
    double wall_seconds "aiop_wall_seconds"() noexcept nogil


cdef class Metric:
    """Base of the compiled metric kinds: identity plus the label -> series table."""

    cdef str metric_name
    cdef object doc_given         # the HELP object as given (23.12 kept any object)
    cdef str doc_text             # str() of it, checked to be UTF-8
    cdef tuple const_key          # the const labels as a label_key
    cdef str unit_text            # OpenMetrics UNIT ("" for none)
    cdef str openmetrics_kind     # OpenMetrics type the Python layer chose (info, stateset), or None
    cdef SeriesTable series
    cdef Py_ssize_t capacity      # series the value arrays have room for
    cdef list states              # series number -> the kind's Python object (summary estimators)
    cdef list exemplars           # series number -> latest exemplar(s) (exemplar.pxi), or None
    cdef double* created          # series number -> when it was created (s since the epoch, to the ms)
    cdef Py_ssize_t created_capacity
    cdef list objects             # a plain Collector's values (any objects); None for the kinds
    cdef bint is_snapshot         # a detached copy: nothing else can reach it
    cdef unsigned long long layout   # bumped whenever series numbers move (remove, clear)
    # multi-process mode (shm_store.pxi): each series' values mirrored in the process's store
    cdef bint shares              # keep this metric's series in the process's store
    cdef StoreWriter store        # that store, once a series was made (None before)
    cdef uint32_t shared_id       # this metric's id in `store` (0: none yet)
    cdef uint32_t gauge_mode      # how the workers' gauge values combine (GAUGE_MODES)
    cdef uint64_t** shared        # series number -> its value words in `store`, or NULL
    cdef Py_ssize_t shared_capacity

    def __dealloc__(self):
        self.free_array(self.created, self.created_capacity * sizeof(double))
        free(self.shared)

    def __cinit__(self, *args, **kwargs):
        self.series = SeriesTable()
        self.metric_name = ""
        self.doc_given = ""
        self.doc_text = ""
        self.const_key = ()
        self.unit_text = ""

    @property
    def name(self):
        return self.metric_name

    @name.setter
    def name(self, value):
        if not isinstance(value, str):
            raise TypeError(f"Metric names must be str, got {type(value).__name__}")
        text = exact_text(value)
        check_utf8(text, "Metric name")
        self.metric_name = text

    @property
    def doc(self):
        return self.doc_given

    @doc.setter
    def doc(self, value):
        text = exact_text(value)
        check_utf8(text, "HELP text")
        self.doc_given = value
        self.doc_text = text

    @property
    def unit(self):
        """The OpenMetrics unit of this metric's values ("" for none)."""
        return self.unit_text

    @unit.setter
    def unit(self, value):
        if not isinstance(value, str):
            raise TypeError(f"unit must be a str, got {type(value).__name__}")
        text = exact_text(value)
        check_utf8(text, "Unit")
        self.unit_text = text

    def _set_openmetrics_kind(self, str kind):
        """The OpenMetrics type to expose when it is not the core kind's own
        (a gauge exposed as info or stateset)."""
        self.openmetrics_kind = kind

    @property
    def const_labels(self):
        """Labels added to every series, as their exposed texts."""
        return {self.const_key[i]: self.const_key[i + 1] for i in range(0, len(self.const_key), 2)}

    @const_labels.setter
    def const_labels(self, labels):
        cdef tuple key = label_key(self.as_labels(labels))
        check_label_key(key, self.series.reserved)
        self.const_key = key

    @property
    def reserved_label(self):
        """The one extra label name this kind keeps for itself (or None)."""
        return self.series.reserved

    # -- storage hooks, overridden by each kind -------------------------------

    cdef object new_state(self):
        """The Python object a new series of this kind needs (made before the
        series is committed, since making it may run Python code), or None."""
        return None

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Grow the value arrays to hold at least `n` series."""
        self.capacity = n
        return 0

    cdef int reset(self, Py_ssize_t series) except -1:
        """Give a new series its zero value (C work only)."""
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        """Copy series `src`'s values into number `dst` (removal compaction)."""
        return 0

    cdef object read(self, Py_ssize_t series):
        """The Python value of `series` (what get() returns)."""
        return self.objects[series] if self.objects is not None else None

    cdef object export_series(self, Py_ssize_t series):
        """Picklable data of `series` (the inverse of import_series)."""
        return None

    cdef int import_series(self, Py_ssize_t series, object data) except -1:
        return 0

    cdef object config(self):
        """Picklable construction data of the kind (buckets, invariants)."""
        return None

    cdef int configure(self, object config) except -1:
        return 0

    cdef Py_ssize_t samples_per_series(self):
        """Sample lines one series exposes (encoders size their buffers from it)."""
        return 1

    cdef Metric blank(self):
        """A new, empty object of this kind's core class (for snapshots)."""
        return Metric.__new__(Metric)

    cdef int copy_values_into(self, Metric copy) except -1:
        """Copy the value arrays (and kind config) into `copy`, a blank()."""
        return 0

    cdef uint32_t shared_words(self) noexcept:
        """Value words one series takes in a multi-process store."""
        return 0

    cdef void share_values(self, Py_ssize_t series, uint64_t* words) noexcept:
        """Store all of `series`' values into its store `words`."""
        pass

    cdef Metric detached(self, bint with_created):
        """A private copy of this metric's series for the encoders (see
        snapshot.pxi). Must run with no Python code in between: the caller
        pauses the garbage collector. The copy's table has no index; it is
        only ever walked, never looked up. It shares the list of label sets
        (the live table appends to it, and copies it before any other
        change while shared: SeriesTable.own_label_sets), so taking it costs
        a copy of the values only (and of the creation times `with_created`:
        its `created` stays NULL otherwise)."""
        cdef Metric copy = self.blank()
        copy.is_snapshot = True       # first: its arrays come from blocks.pxi
        copy.metric_name = self.metric_name
        copy.doc_given = self.doc_given
        copy.doc_text = self.doc_text
        copy.const_key = self.const_key
        copy.unit_text = self.unit_text
        copy.openmetrics_kind = self.openmetrics_kind
        self.copy_values_into(copy)
        if with_created:
            copy.reserve_created(self.series.count or 1)
            memcpy(copy.created, self.created, self.series.count * sizeof(double))
        if self.exemplars is not None:
            copy.exemplars = [entry if type(entry) is not list else list(entry)
                              for entry in self.exemplars]
        copy.series.label_sets = self.series.label_sets
        copy.series.count = self.series.count
        copy.series.reserved = self.series.reserved
        return copy

    # -- a plain Collector: one Python object per series ---------------------

    def _hold_objects(self):
        """Keep any object per series (what a plain aioprometheus Collector did)."""
        if self.objects is None:
            self.objects = [None] * self.series.count

    def _holds_objects(self):
        return self.objects is not None

    def _set_object(self, labels, value):
        # the series first: finding it may run Python code that replaces the list
        cdef Py_ssize_t i = self.slot(labels)
        self.objects[i] = value

    def _get_object(self, labels):
        cdef Py_ssize_t i = self.existing(labels)
        return self.objects[i]

    # -- series lookup: the one path every hot method takes -------------------

    cdef inline dict as_labels(self, object labels):
        if type(labels) is dict:
            return <dict>labels
        if labels is None:
            return NO_LABELS
        if isinstance(labels, dict):
            return <dict>labels
        if not labels:                # "" and other falsy non-dicts: no labels, as in 23.12
            return NO_LABELS
        raise TypeError(f"labels must be a dict, got {type(labels).__name__}")

    cdef inline Py_ssize_t slot(self, object labels) except -1:
        """Series number for `labels`, creating the series on first use."""
        cdef dict d = self.as_labels(labels)
        cdef Py_ssize_t i = self.series.find_plain(d)
        if i >= 0:
            return i
        return self.create(label_key(d))

    cdef Py_ssize_t create(self, tuple key) except -1:
        """The series of `key`, created if it does not exist.

        Whatever ran before (a label's __str__, a finalizer) may have changed
        the table, so it is looked up again; and again after new_state, the
        last step that may run Python code. From there on all is C.
        """
        cdef Py_hash_t h = flat_hash(key)
        cdef Py_ssize_t i = self.series.find_key(key, h)
        cdef Py_ssize_t cap
        if i >= 0:
            return i
        cdef uint64_t* words = NULL
        cdef uint64_t record_bytes = 0
        check_label_key(key, self.series.reserved)
        state = self.new_state()
        if self.shares:
            self.attach_store()
        i = self.series.find_key(key, h)
        if i >= 0:
            return i
        if self.series.count >= self.capacity:
            cap = 4 if self.capacity < 4 else self.capacity * 2
            self.reserve(cap)
        if self.series.count >= self.created_capacity:
            self.reserve_created(self.capacity)
        if self.store is not None:
            if self.series.count >= self.shared_capacity:
                self.reserve_shared(self.capacity)
            words = self.store.begin_series(self.shared_id, self.shared_words(), key,
                                            &record_bytes)
        i = self.series.add(key, h)
        self.reset(i)
        if words != NULL:           # published with its values zero, as reset() left them
            self.shared[i] = words
            self.store.commit(record_bytes)
        self.created[i] = llround(wall_seconds() * 1000.0) / 1000.0
        if self.states is not None:
            self.states.append(state)
        if self.exemplars is not None:
            self.exemplars.append(None)
        if self.objects is not None:
            self.objects.append(None)
        return i

    cdef int attach_store(self) except -1:
        """Make sure this metric is in the process's store (a new process's
        after a fork): Python code, run before a new series is looked up last."""
        cdef StoreWriter store = process_store()
        if store is not self.store:
            if self.store is not None:   # forked with no at-fork hook run
                self._forget_store()
            self.store = store
            self.shared_id = 0
        if self.shared_id == 0:
            self.shared_id = metric_record(store, self)
        return 0

    def _share(self, mode="all"):
        """Keep this metric's series in the process's multi-process store
        (set before its first series); `mode` says how the workers' gauge
        values combine (GAUGE_MODES)."""
        if mode not in GAUGE_MODES:
            raise ValueError(f"multiprocess_mode must be one of {', '.join(GAUGE_MODES)}, "
                             f"got {mode!r}")
        if self.series.count:
            raise ValueError("A metric can only be shared before its first series")
        self.gauge_mode = GAUGE_MODES.index(mode)
        self.shares = True

    @property
    def multiprocess_mode(self):
        """How the workers' values combine in multi-process mode (None: not shared)."""
        return GAUGE_MODES[self.gauge_mode] if self.shares else None

    def _forget_store(self):
        """In a child process just forked: drop every series (they stay in the
        parent's store, which is the parent's to write) and the store."""
        free(self.shared)
        self.shared = NULL
        self.shared_capacity = 0
        self.store = None
        self.shared_id = 0
        self._clear()

    cdef int reserve_shared(self, Py_ssize_t n) except -1:
        cdef uint64_t** grown = <uint64_t**>realloc(self.shared, n * sizeof(uint64_t*))
        if grown == NULL:
            raise MemoryError()
        self.shared = grown
        self.shared_capacity = n
        return 0

    cdef void* resize_array(self, void* data, size_t size) noexcept:
        """`data` resized to `size` bytes (NULL: a new array), or NULL if
        memory is short; a snapshot's new arrays are those an earlier
        snapshot left (blocks.pxi)."""
        if data == NULL and self.is_snapshot:
            return take_block(size)
        return realloc(data, size)

    cdef void free_array(self, void* data, size_t size) noexcept:
        """Free an array of `size` bytes (a snapshot's: for the next one)."""
        if self.is_snapshot:
            give_block(data, size)
        else:
            free(data)

    cdef int reserve_created(self, Py_ssize_t n) except -1:
        cdef double* grown = <double*>self.resize_array(self.created, n * sizeof(double))
        if grown == NULL:
            raise MemoryError()
        self.created = grown
        self.created_capacity = n
        return 0

    cdef Py_ssize_t existing(self, object labels) except -1:
        """Series number for `labels`; KeyError if there is none."""
        cdef dict d = self.as_labels(labels)
        cdef Py_ssize_t i = self.series.find_plain(d)
        cdef tuple key
        if i == NOT_PLAIN:
            key = label_key(d)
            i = self.series.find_key(key, flat_hash(key))
        if i < 0:
            raise KeyError(labels)
        return i

    # -- bound series: one lookup, then updates without any --------------------

    def labels(self, labels=None, **names):
        """The series for `labels` (a dict, or names as keywords), created now,
        as an object whose methods (inc, add, set, observe... as this kind
        has them) update it without looking it up again."""
        cdef dict d = dict(self.as_labels(labels))
        d.update(names)
        cdef tuple key = label_key(d)
        return self.bound(key)

    cdef BoundSeries bound(self, tuple key):
        raise TypeError(f"{type(self).__name__} has no bound series")

    # -- Python-facing helpers for the collectors layer -----------------------

    def _label_sets(self):
        """A fresh labels dict (of label texts) for every series, in series order."""
        cdef list result = []
        with PausedGC():
            for i in range(self.series.count):
                result.append(self.series.labels_at(i))
        return result

    def _items(self):
        """[(labels dict, value), ...] for every series, read in one go."""
        cdef list result = []
        with PausedGC():
            for i in range(self.series.count):
                result.append((self.series.labels_at(i), self.read(i)))
        return result

    def _series_count(self):
        return self.series.count

    def _remove(self, labels):
        """Drop the series of `labels`; KeyError if it does not exist."""
        cdef Py_ssize_t gone = self.existing(labels)
        if self.store is not None:      # published gone before anything moves
            self.store.remove_series(self.shared[gone])
        cdef Py_ssize_t last = self.series.remove_number(gone)
        self.layout += 1
        if gone != last:
            self.move(gone, last)
            self.created[gone] = self.created[last]
            if self.store is not None:
                self.shared[gone] = self.shared[last]
        # The Python objects of the removed series are released only here, by
        # the locals going away, once every table and array agrees.
        doomed_state = compact(self.states, gone, last)
        doomed_exemplar = compact(self.exemplars, gone, last)
        doomed_object = compact(self.objects, gone, last)

    def _clear(self):
        """Drop every series."""
        old_states = self.states
        old_objects = self.objects
        old_exemplars = self.exemplars
        if self.store is not None and self.shared_id:
            self.store.clear_metric(self.shared_id)
        self.series.clear()
        self.layout += 1
        self.exemplars = None     # made again by the next exemplar
        if old_states is not None:
            self.states = []
        if old_objects is not None:
            self.objects = []

    # -- copy and pickle: a detached metric with the same series --------------

    def __reduce__(self):
        cdef list rows = []
        with PausedGC():
            for i in range(self.series.count):
                rows.append((self.series.labels_at(i), self.export_series(i),
                             self.objects[i] if self.objects is not None else None))
        state = (self.metric_name, self.doc_given, self.const_labels, self.config(),
                 self.objects is not None, rows, self.unit_text, self.openmetrics_kind)
        return (restore_metric, (type(self), state), getattr(self, "__dict__", None))

    def _restore(self, state):
        name, doc, const_labels, config, holds_objects, rows, unit, kind = state
        self.name = name
        self.unit = unit
        self.openmetrics_kind = kind
        self.doc = doc
        self.const_labels = const_labels
        self.configure(config)
        if holds_objects:
            self._hold_objects()
        for labels, data, obj in rows:
            i = self.slot(labels)
            self.import_series(i, data)
            if self.objects is not None:
                self.objects[i] = obj


def restore_metric(cls, state):
    """Rebuild a pickled or copied metric: not registered anywhere, like the copy
    of any object."""
    metric = cls.__new__(cls)
    (<Metric?>metric)._restore(state)
    return metric


cdef object compact(list values, Py_ssize_t gone, Py_ssize_t last):
    """Move values[last] into values[gone] and drop the end (as the series
    table did); returns the removed object for the caller to release."""
    if values is None:
        return None
    doomed = values[gone]
    if gone != last:
        values[gone] = values[last]
    del values[last]
    return doomed


# -- label order, shared by the encoders -------------------------------------
#
# A series is exposed with its own labels and the metric's const labels,
# merged and sorted by name; where both have a name, the series' value wins.

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


cdef Py_ssize_t buffer_estimate(list metrics, Py_ssize_t bytes_per_sample):
    """A starting buffer size for encoding `metrics`, so the buffer rarely regrows."""
    cdef Py_ssize_t total = 4096
    for metric in metrics:
        if isinstance(metric, Metric):
            total += 256 + bytes_per_sample * (<Metric>metric).series.count * (
                <Metric>metric).samples_per_series()
    return total


# -- numbers -------------------------------------------------------------------

cdef inline double to_number(object value, object what, bint* is_int) except? -1.0:
    """Convert a value to a double (setting *is_int when it is an integer), or
    raise a TypeError that names the metric kind: `what` is that name, or the
    metric itself (named only on error)."""
    if type(value) is float:
        is_int[0] = False
        return PyFloat_AS_DOUBLE(value)
    if type(value) is int:
        is_int[0] = True
        return <double>value
    return to_number_slow(value, what, is_int)


cdef inline double to_observation(object value, str what) except? -1.0:
    """An observation (histogram, summary): a number, but not a bool."""
    cdef bint is_int
    if type(value) is bool:
        raise TypeError(f"{what} only works with digits (int, float)")
    return to_number(value, what, &is_int)


cdef str kind_name(object what):
    return <str>what if isinstance(what, str) else type(what).__name__


cdef double to_number_slow(object value, object what, bint* is_int) except? -1.0:
    """Other numbers convert through __index__/__float__ (Python code, run
    before the caller touches any series); str and bool observations do not."""
    if isinstance(value, str):
        raise TypeError(f"{kind_name(what)} only works with digits (int, float)")
    is_int[0] = isinstance(value, int)
    try:
        return <double>value
    except TypeError:
        raise TypeError(f"{kind_name(what)} only works with digits (int, float)") from None


cdef double number_from_text(str value, object what, bint* is_int) except? -1.0:
    """A numeric string ("3", "1.5") as the number 23.12 exposed for it; any
    other string is a TypeError."""
    cdef str text = exact_text(value)
    try:
        whole = int(text)
    except ValueError:
        pass
    else:
        is_int[0] = True
        return <double>whole
    try:
        result = float(text)
    except ValueError:
        raise TypeError(f"{kind_name(what)} only works with digits (int, float)") from None
    is_int[0] = False
    return result
