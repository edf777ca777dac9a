# SeriesTable: label set -> dense series number.
#
# A series is identified by the label text it exposes: each name as str(name),
# each value as str(value), so {"code": 200} and {"code": "200"} are one
# series and {"w": 1}, {"w": True}, {"w": 1.0} are three, as Prometheus sees
# them. The table stores every label set as a name-sorted flat tuple of exact
# str objects (name0, text0, name1, text1, ...), so hashing and comparing
# stored keys never calls into Python code.
#
# The memory-safety rule: Python code (a label's __str__, a finalizer run by
# the garbage collector) may re-enter any metric or switch threads. So user
# objects are turned into text before a lookup starts, on a snapshot of the
# dict's items, and nothing found before that is trusted after it.

cdef extern from "Python.h":
    ctypedef size_t Py_uhash_t
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)
    list PyDict_Items(object d)
    Py_ssize_t PyDict_GET_SIZE(object d)
    str PyUnicode_FromObject(object o)
    Py_ssize_t PyTuple_GET_SIZE(object t)
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)
    PyObject* PyList_GET_ITEM(object l, Py_ssize_t i)
    bint is_exact_str "PyUnicode_CheckExact"(PyObject* o)
    bint is_exact_int "PyLong_CheckExact"(PyObject* o)
    long PyLong_AsLongAndOverflow(object o, int* overflow) noexcept  # exact int: cannot fail
    int PyUnicode_Compare(PyObject* a, PyObject* b) noexcept
    Py_ssize_t Py_REFCNT(object o)
    void PyObject_GC_UnTrack(void* o)

cdef extern from *:
    """
    /* The hash of an exact str (which cannot fail nor call anything): the
       one cached in the object, computed only when not yet cached. */
    static inline Py_hash_t aiop_hash(PyObject *o) {
    #if PY_VERSION_HEX < 0x030E0000
        if (PyUnicode_CheckExact(o)) {
            Py_hash_t h = ((PyASCIIObject *)o)->hash;
            if (h != -1) return h;
        }
    #endif
        return PyObject_Hash(o);
    }
    """
    Py_hash_t str_hash "aiop_hash"(PyObject* o) noexcept


cdef inline bint str_equal(PyObject* a, PyObject* b) noexcept:
    """Equality of two exact str (cannot fail, calls nothing)."""
    return PyUnicode_Compare(a, b) == 0

cdef enum:
    EMPTY = 0
    DELETED = -1
    NOT_PLAIN = -3     # a lookup met a key or value that is not an exact str

# Label names the data model keeps for itself (aioprometheus rejects these too).
RESERVED_LABEL_NAMES = frozenset(("job",))
RESERVED_LABEL_PREFIX = "__"


cdef inline Py_uhash_t mix_item(Py_uhash_t hk, Py_uhash_t hv) noexcept:
    """Scramble one (name, value) pair; pairs are then summed, so order drops out."""
    cdef unsigned long long x = (<unsigned long long>hk) * 0x9E3779B97F4A7C15ULL
    x ^= <unsigned long long>hv
    x ^= x >> 31
    x *= 0xD6E8FEB86659FD93ULL
    x ^= x >> 29
    return <Py_uhash_t>x


cdef inline Py_hash_t finish_hash(Py_uhash_t acc) noexcept:
    if <Py_hash_t>acc == -1:
        return 1
    return <Py_hash_t>acc


cdef enum:
    MAX_PLAIN_LABELS = 16    # larger label sets take the label_key path


ctypedef struct PlainItems:
    # A dict's items, borrowed: valid while no Python code runs, which is
    # all the time the plain path needs them.
    Py_ssize_t n
    PyObject* names[MAX_PLAIN_LABELS]
    PyObject* values[MAX_PLAIN_LABELS]


cdef bint collect_plain(dict labels, PlainItems* items, Py_hash_t* out) noexcept:
    """Walk a dict once: its names, value texts and their hash, if every name
    is an exact str and every value's text is known without a call
    (plain_text); False as soon as one is not, before any call on it."""
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t n = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef Py_ssize_t size = PyDict_GET_SIZE(labels)
    cdef Py_uhash_t acc = <Py_uhash_t>size
    if size > MAX_PLAIN_LABELS:
        return False
    # (stopping at `size` saves the walk's final, empty step)
    while n < size and PyDict_Next(labels, &pos, &key, &value):
        if not is_exact_str(key):
            return False
        value = plain_text(value)
        if value == NULL:
            return False
        acc += mix_item(<Py_uhash_t>str_hash(key), <Py_uhash_t>str_hash(value))
        items.names[n] = key
        items.values[n] = value
        n += 1
    items.n = n
    out[0] = finish_hash(acc)
    return True


cdef Py_hash_t flat_hash(tuple flat) noexcept:
    """The hash collect_plain gives a dict of the same (exact str) content."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(flat)
    cdef Py_uhash_t acc = <Py_uhash_t>(n // 2)
    cdef Py_ssize_t i
    for i in range(0, n, 2):
        acc += mix_item(<Py_uhash_t>str_hash(PyTuple_GET_ITEM(flat, i)),
                        <Py_uhash_t>str_hash(PyTuple_GET_ITEM(flat, i + 1)))
    return finish_hash(acc)


# The texts of the label values that are not str but common (HTTP status
# codes, small ids, flags), made once: such values then take the plain path,
# which calls nothing, and match the stored text object by identity.
cdef enum:
    SMALL_INT_TEXTS = 1024
cdef tuple SMALL_INT_TEXT = tuple([str(k) for k in range(SMALL_INT_TEXTS)])
cdef str TRUE_TEXT = "True"
cdef str FALSE_TEXT = "False"


cdef inline PyObject* plain_text(PyObject* o) noexcept:
    """The text of `o` without calling anything (borrowed, kept alive by `o`
    or by this module), or NULL when that would take a call: an exact str,
    True/False, an exact int in 0..1023."""
    cdef long v
    cdef int overflow
    if is_exact_str(o):
        return o
    if is_exact_int(o):
        v = PyLong_AsLongAndOverflow(<object>o, &overflow)
        if overflow == 0 and 0 <= v < SMALL_INT_TEXTS:
            return PyTuple_GET_ITEM(SMALL_INT_TEXT, v)
        return NULL
    if o == <PyObject*>True:
        return <PyObject*>TRUE_TEXT
    if o == <PyObject*>False:
        return <PyObject*>FALSE_TEXT
    return NULL


cdef str exact_text(object o):
    """str(o) as an exact str object: the text a label name or value exposes."""
    cdef PyObject* known = plain_text(<PyObject*>o)
    if known != NULL:
        return <str>known
    cdef object text = str(o)           # may run Python code
    if type(text) is not str:
        text = PyUnicode_FromObject(text)   # a str subclass: copy, no call
    return <str>text


cdef int check_utf8(str text, str what) except -1:
    """Raise ValueError unless `text` can be written as UTF-8 (no lone surrogates)."""
    cdef Py_ssize_t n
    try:
        PyUnicode_AsUTF8AndSize(text, &n)
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 text: {text!r}") from None
    return 0


cdef inline bint is_name_start(Py_UCS4 c) noexcept:
    return (u'a' <= c <= u'z') or (u'A' <= c <= u'Z') or c == u'_'


cdef inline bint is_name_char(Py_UCS4 c) noexcept:
    return is_name_start(c) or (u'0' <= c <= u'9')


def check_label_name(name, str reserved=None):
    """Raise ValueError unless `name` may be used as a label name.

    `reserved` is the one extra name a metric kind keeps for itself
    (`le` for histograms, `quantile` for summaries).
    """
    cdef Py_UCS4 c
    if not isinstance(name, str):
        raise TypeError(f"Label names must be str, got {type(name).__name__}: {name!r}")
    cdef str text = exact_text(name)
    if text.startswith(RESERVED_LABEL_PREFIX):
        raise ValueError(f"Invalid label prefix: {text}")
    if not text or text in RESERVED_LABEL_NAMES or (reserved is not None and text == reserved):
        raise ValueError(f"Invalid label name: {text}")
    if not is_name_start(text[0]):
        raise ValueError(f"Invalid label name: {text}")
    for c in text:
        if not is_name_char(c):
            raise ValueError(f"Invalid label name: {text}")


cdef tuple label_key(dict labels):
    """The label set `labels` exposes: a name-sorted flat tuple of exact str.

    Works on a snapshot of the items (any dict subclass's own storage), so
    what a name's or value's __str__ does to the dict cannot matter here.
    """
    cdef list items = PyDict_Items(labels)
    cdef list pairs = []
    cdef list flat = []
    cdef str previous = None
    for key, value in items:
        if not isinstance(key, str):
            raise TypeError(f"Label names must be str, got {type(key).__name__}: {key!r}")
        pairs.append((exact_text(key), exact_text(value)))
    pairs.sort()
    for name, text in pairs:
        if name == previous:
            raise ValueError(f"Duplicate label name: {name}")
        previous = name
        flat.append(name)
        flat.append(text)
    return tuple(flat)


cdef int check_label_key(tuple flat, str reserved) except -1:
    """Raise unless every name of `flat` is a valid label name and every text
    is valid UTF-8: checked when a series is created, so a bad label fails the
    call that brought it and never a later scrape."""
    cdef Py_ssize_t i
    for i in range(0, len(flat), 2):
        check_label_name(flat[i], reserved)
        check_utf8(<str>flat[i + 1], "Label value")
    return 0


def check_labels(dict labels, str reserved=None):
    """Raise unless `labels` is a valid label set; return its dict of exposed
    texts ({name: str(value)})."""
    cdef tuple flat = label_key(labels)
    check_label_key(flat, reserved)
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


cdef bint same_objects(tuple stored, dict labels) noexcept:
    """True when every item of `labels` is, object for object, a name and its
    value's text in `stored`: a match proven without comparing or calling
    anything. Stops at the first item that is not."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(stored)
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t seen = 0
    cdef Py_ssize_t i
    cdef PyObject* key
    cdef PyObject* value
    if n != 2 * PyDict_GET_SIZE(labels):
        return False
    while 2 * seen < n and PyDict_Next(labels, &pos, &key, &value):
        seen += 1
        i = 0
        while i < n and PyTuple_GET_ITEM(stored, i) != key:
            i += 2
        if i >= n or PyTuple_GET_ITEM(stored, i + 1) != plain_text(value):
            return False
    return True


cdef bint items_match(tuple stored, PlainItems* items) noexcept:
    """True when `items` are exactly the label set `stored`: names and values
    by identity first (they are usually the very objects stored), else as
    equal exact str, compared in C without calling anything."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(stored)
    cdef Py_ssize_t k, i
    cdef PyObject* name
    cdef PyObject* value
    cdef PyObject* want
    if n != 2 * items.n:
        return False
    for k in range(items.n):
        name = items.names[k]
        i = 0
        while i < n and PyTuple_GET_ITEM(stored, i) != name:
            i += 2
        if i >= n:
            i = 0
            while i < n and not str_equal(PyTuple_GET_ITEM(stored, i), name):
                i += 2
            if i >= n:
                return False
        want = PyTuple_GET_ITEM(stored, i + 1)
        value = items.values[k]
        if want != value and not str_equal(want, value):
            return False
    return True


cdef bint flat_equal(tuple a, tuple b) noexcept:
    """Equality of two label_key tuples (exact str throughout: calls nothing)."""
    cdef Py_ssize_t n = PyTuple_GET_SIZE(a)
    cdef Py_ssize_t i
    if n != PyTuple_GET_SIZE(b):
        return False
    for i in range(n):
        if not str_equal(PyTuple_GET_ITEM(a, i), PyTuple_GET_ITEM(b, i)):
            return False
    return True


cdef inline list untracked(list label_sets):
    """`label_sets`, left out of the garbage collector's traversals: it holds
    flat tuples of exact str only, which can never be part of a reference
    cycle, and a full collection would otherwise visit every series (about
    1.5 ms per 100k series, every time)."""
    PyObject_GC_UnTrack(<void*>label_sets)
    return label_sets


@cython.final
cdef class SeriesTable:
    """Maps label sets to series numbers 0..count-1.

    Series are dense: removing one moves the last series into its number, so
    metrics can keep their values in plain C arrays. Every stored key is a
    flat tuple of exact str (label_key), so no method here calls Python code.
    """

    cdef list label_sets        # series number -> label_key tuple (shared by snapshots:
                                # only ever appended to in place, see own_label_sets)
    cdef Py_hash_t* hashes      # series number -> its hash
    cdef int* index             # open addressing: series number + 1, EMPTY or DELETED
    cdef Py_ssize_t mask        # len(index) - 1, a power of two minus one
    cdef Py_ssize_t used        # index entries not EMPTY (live + DELETED)
    cdef Py_ssize_t hashes_capacity
    cdef readonly Py_ssize_t count
    cdef readonly str reserved  # the label name this metric kind keeps for itself
    # The dict object the last plain lookup came with, and its series: hot
    # loops usually pass the same dict again, and then one identity check of
    # its items against that series' labels replaces hashing and probing.
    # Only the address is kept (never dereferenced); a hit is confirmed by
    # the items being the very objects stored.
    cdef void* hint_dict
    cdef Py_ssize_t hint_series

    def __cinit__(self, str reserved=None):
        self.label_sets = untracked([])
        self.reserved = reserved
        self.hint_series = -1
        self.mask = 7
        self.index = <int*>calloc(self.mask + 1, sizeof(int))
        self.hashes_capacity = 4
        self.hashes = <Py_hash_t*>malloc(self.hashes_capacity * sizeof(Py_hash_t))
        if self.index == NULL or self.hashes == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.index)
        free(self.hashes)

    cdef Py_ssize_t probe(self, Py_hash_t h, tuple key, PlainItems* items) noexcept:
        """Index position holding the series of hash `h` whose labels are
        `key` (a label_key tuple) or, when `key` is None, `items`; or -1."""
        cdef Py_uhash_t perturb = <Py_uhash_t>h
        cdef Py_ssize_t pos = <Py_ssize_t>(perturb & <Py_uhash_t>self.mask)
        cdef Py_ssize_t entry
        cdef tuple stored
        while True:
            entry = self.index[pos]
            if entry == EMPTY:
                return -1
            if entry > 0 and self.hashes[entry - 1] == h:
                stored = <tuple>PyList_GET_ITEM(self.label_sets, entry - 1)
                if key is None:
                    if items_match(stored, items):
                        return pos
                elif stored is key or flat_equal(stored, key):
                    return pos
            perturb >>= 5
            pos = <Py_ssize_t>((<Py_uhash_t>pos * 5 + perturb + 1) & <Py_uhash_t>self.mask)

    cdef Py_ssize_t find_plain(self, dict labels) noexcept:
        """Series number for `labels`, -1 when there is none, or NOT_PLAIN
        when the dict holds something other than exact str (then nothing was
        called on it: the caller builds its label_key)."""
        cdef PlainItems items
        cdef Py_hash_t h
        cdef Py_ssize_t series = self.hint_series
        cdef Py_ssize_t pos
        if (series >= 0 and self.hint_dict == <void*>labels and series < self.count
                and same_objects(<tuple>PyList_GET_ITEM(self.label_sets, series), labels)):
            return series
        if not collect_plain(labels, &items, &h):
            return NOT_PLAIN
        pos = self.probe(h, None, &items)
        if pos < 0:
            return -1
        series = self.index[pos] - 1
        self.hint_dict = <void*>labels
        self.hint_series = series
        return series

    cdef Py_ssize_t find_key(self, tuple key, Py_hash_t h) noexcept:
        """Series number for a label_key tuple of hash `h`, or -1."""
        cdef Py_ssize_t pos = self.probe(h, key, NULL)
        if pos < 0:
            return -1
        return self.index[pos] - 1

    cdef Py_ssize_t add(self, tuple key, Py_hash_t h) except -1:
        """Register a new (checked) label_key and return its number."""
        if self.count == self.hashes_capacity:
            self.grow_hashes()
        if 2 * (self.used + 1) > self.mask + 1:
            self.rebuild(2 * (self.count + 1))
        self.label_sets.append(key)
        self.hashes[self.count] = h
        self.count += 1
        self.place(h, <int>self.count)
        return self.count - 1

    cdef void place(self, Py_hash_t h, int entry) noexcept:
        """Put `entry` into the first free index position of hash `h`'s probe sequence."""
        cdef Py_uhash_t perturb = <Py_uhash_t>h
        cdef Py_ssize_t pos = <Py_ssize_t>(perturb & <Py_uhash_t>self.mask)
        while self.index[pos] > 0:
            perturb >>= 5
            pos = <Py_ssize_t>((<Py_uhash_t>pos * 5 + perturb + 1) & <Py_uhash_t>self.mask)
        if self.index[pos] == EMPTY:
            self.used += 1
        self.index[pos] = entry

    cdef int grow_hashes(self) except -1:
        cdef Py_ssize_t cap = self.hashes_capacity * 2
        cdef Py_hash_t* grown = <Py_hash_t*>realloc(self.hashes, cap * sizeof(Py_hash_t))
        if grown == NULL:
            raise MemoryError()
        self.hashes = grown
        self.hashes_capacity = cap
        return 0

    cdef int rebuild(self, Py_ssize_t minimum) except -1:
        """Re-hash every live series into an index of at least 2 * minimum positions."""
        cdef Py_ssize_t size = 8
        cdef Py_ssize_t i
        while size < 2 * minimum:
            size *= 2
        cdef int* fresh = <int*>calloc(size, sizeof(int))
        if fresh == NULL:
            raise MemoryError()
        free(self.index)
        self.index = fresh
        self.mask = size - 1
        self.used = 0
        for i in range(self.count):
            self.place(self.hashes[i], <int>(i + 1))
        return 0

    cdef Py_ssize_t remove_number(self, Py_ssize_t series) except -1:
        """Forget `series`; the last series takes its number, which is returned
        (callers move their values from there into `series`)."""
        cdef Py_ssize_t last = self.count - 1
        self.own_label_sets()
        self.hint_series = -1
        self.index[self.position_of_number(series)] = DELETED
        if series != last:
            self.index[self.position_of_number(last)] = <int>(series + 1)
            self.label_sets[series] = self.label_sets[last]
            self.hashes[series] = self.hashes[last]
        del self.label_sets[last]
        self.count -= 1
        return last

    cdef int own_label_sets(self) except -1:
        """Before label_sets changes other than an append: a private list.
        A snapshot shares the list (reading its first `count` entries), so
        the list it sees must keep them; copied only while one is alive
        (with the collector paused, so no finalizer runs in the caller's
        commit)."""
        if Py_REFCNT(self.label_sets) > 1:
            with PausedGC():
                self.label_sets = untracked(self.label_sets[:self.count])
        return 0

    cdef Py_ssize_t position_of_number(self, Py_ssize_t series) noexcept:
        """Index position that holds `series` (which must be live)."""
        cdef Py_uhash_t perturb = <Py_uhash_t>self.hashes[series]
        cdef Py_ssize_t pos = <Py_ssize_t>(perturb & <Py_uhash_t>self.mask)
        while self.index[pos] != series + 1:
            perturb >>= 5
            pos = <Py_ssize_t>((<Py_uhash_t>pos * 5 + perturb + 1) & <Py_uhash_t>self.mask)
        return pos

    cdef int clear(self) except -1:
        self.hint_series = -1
        self.label_sets = untracked([])
        self.count = 0
        return self.rebuild(0)

    cdef tuple key_at(self, Py_ssize_t series):
        """The label_key of `series`."""
        return <tuple>self.label_sets[series]

    cdef dict labels_at(self, Py_ssize_t series):
        """A fresh dict of the label texts of `series`."""
        cdef tuple flat = <tuple>self.label_sets[series]
        cdef dict result = {}
        cdef Py_ssize_t i
        for i in range(0, len(flat), 2):
            result[flat[i]] = flat[i + 1]
        return result
