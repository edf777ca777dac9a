# SeriesTable: label set -> dense series number.
#
# A metric keeps its values in C arrays indexed by series number; this table
# finds that number for a labels dict without serialising the dict. The key
# is the dict's content: an order-independent hash of its items picks the
# bucket, and an item-by-item comparison with the stored label set confirms
# the hit, so {"a": 1, "b": 2} and {"b": 2, "a": 1} are one series.

cdef extern from "Python.h":
    ctypedef size_t Py_uhash_t
    int PyDict_Next(object d, Py_ssize_t* pos, PyObject** key, PyObject** value)
    PyObject* PyDict_GetItemWithError(object d, object key) except? NULL
    Py_hash_t PyObject_Hash(PyObject* o) except? -1
    int PyObject_RichCompareBool(PyObject* a, PyObject* b, int op) except -1
    Py_ssize_t PyTuple_GET_SIZE(object t)
    Py_ssize_t PyDict_GET_SIZE(object d)
    PyObject* PyTuple_GET_ITEM(object t, Py_ssize_t i)

cdef extern from *:
    """
    /* The str hash is cached in the object; read it without a call. */
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
    Py_hash_t aiop_hash(PyObject* o) except? -1

cdef enum:
    EMPTY = 0
    DELETED = -1

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


cdef Py_hash_t labels_hash(dict labels) except? -1:
    """Order-independent hash of a labels dict's items."""
    cdef Py_ssize_t pos = 0
    cdef PyObject* key
    cdef PyObject* value
    cdef Py_uhash_t acc = <Py_uhash_t>len(labels)
    while PyDict_Next(labels, &pos, &key, &value):
        acc += mix_item(<Py_uhash_t>aiop_hash(key), <Py_uhash_t>aiop_hash(value))
    if <Py_hash_t>acc == -1:
        acc = 1
    return <Py_hash_t>acc


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
    cdef str text = <str>name
    if text.startswith(RESERVED_LABEL_PREFIX):
        raise ValueError(f"Invalid label prefix: {text}")
    if not text or text in RESERVED_LABEL_NAMES or (reserved is not None and text == reserved):
        raise ValueError(f"Invalid label name: {text}")
    if not is_name_start(text[0]):
        raise ValueError(f"Invalid label name: {text}")
    for c in text:
        if not is_name_char(c):
            raise ValueError(f"Invalid label name: {text}")


def check_labels(dict labels, str reserved=None):
    """Raise unless every name in `labels` is a valid label name and every
    value is hashable and exposable as UTF-8 text (checked now, so a bad value
    fails the call that brought it, not a later scrape)."""
    cdef Py_ssize_t n
    for name, value in labels.items():
        check_label_name(name, reserved)
        hash(value)
        PyUnicode_AsUTF8AndSize(label_text(value), &n)


cdef inline str label_text(object value):
    """The text a label value is exposed as: str() of it."""
    return <str>value if type(value) is str else str(value)


@cython.final
cdef class SeriesTable:
    """Maps label sets to series numbers 0..count-1.

    Series are dense: removing one moves the last series into its number, so
    metrics can keep their values in plain C arrays.
    """

    cdef list label_sets        # series number -> (name0, value0, name1, value1, ...) sorted by name
    cdef Py_hash_t* hashes      # series number -> labels_hash
    cdef int* index             # open addressing: series number + 1, EMPTY or DELETED
    cdef Py_ssize_t mask        # len(index) - 1, a power of two minus one
    cdef Py_ssize_t used        # index entries not EMPTY (live + DELETED)
    cdef Py_ssize_t hashes_capacity
    cdef readonly Py_ssize_t count
    cdef readonly str reserved  # the label name this metric kind keeps for itself
    # The dict object the last lookup came with, and its series: hot loops
    # usually pass the same dict again, and then one comparison of its items
    # with that series' labels replaces hashing and probing. Only the address
    # is kept (never dereferenced), and a hit is always confirmed by content.
    cdef void* hint_dict
    cdef Py_ssize_t hint_series

    def __cinit__(self, str reserved=None):
        self.label_sets = []
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

    cdef bint matches(self, Py_ssize_t series, dict labels) except -1:
        """True when the stored label set of `series` equals `labels`.

        Walks the caller's dict and finds each name in the short stored tuple,
        by identity first (names are usually the same interned str objects),
        which is cheaper than looking the stored names up in the dict.
        """
        cdef tuple stored = <tuple>self.label_sets[series]
        cdef Py_ssize_t n = PyTuple_GET_SIZE(stored)
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t i, at
        cdef PyObject* key
        cdef PyObject* value
        cdef PyObject* want
        if n != 2 * PyDict_GET_SIZE(labels):
            return False
        while PyDict_Next(labels, &pos, &key, &value):
            at = -1
            for i in range(0, n, 2):
                if PyTuple_GET_ITEM(stored, i) == key:
                    at = i
                    break
            if at < 0:
                for i in range(0, n, 2):
                    if PyObject_RichCompareBool(PyTuple_GET_ITEM(stored, i), key, Py_EQ):
                        at = i
                        break
                if at < 0:
                    return False
            want = PyTuple_GET_ITEM(stored, at + 1)
            if want != value and not PyObject_RichCompareBool(want, value, Py_EQ):
                return False
        return True

    cdef inline Py_ssize_t slot_of(self, Py_hash_t h, dict labels) except -2:
        """Index position holding the series for `labels`, or -1."""
        cdef Py_uhash_t perturb = <Py_uhash_t>h
        cdef Py_ssize_t pos = <Py_ssize_t>(perturb & <Py_uhash_t>self.mask)
        cdef Py_ssize_t entry
        while True:
            entry = self.index[pos]
            if entry == EMPTY:
                return -1
            if entry > 0 and self.hashes[entry - 1] == h and self.matches(entry - 1, labels):
                return pos
            perturb >>= 5
            pos = <Py_ssize_t>((<Py_uhash_t>pos * 5 + perturb + 1) & <Py_uhash_t>self.mask)

    cdef inline Py_ssize_t find_hashed(self, dict labels, Py_hash_t* hash_out) except -2:
        """Series number for `labels`, or -1 (then *hash_out is its hash, for add)."""
        cdef Py_ssize_t series = self.hint_series
        cdef Py_ssize_t pos
        if series >= 0 and self.hint_dict == <void*>labels and self.matches(series, labels):
            return series
        hash_out[0] = labels_hash(labels)
        pos = self.slot_of(hash_out[0], labels)
        if pos < 0:
            return -1
        series = self.index[pos] - 1
        self.hint_dict = <void*>labels
        self.hint_series = series
        return series

    cdef Py_ssize_t find(self, dict labels) except -2:
        """Series number for `labels`, or -1 when there is none."""
        cdef Py_hash_t h
        return self.find_hashed(labels, &h)

    cdef Py_ssize_t add(self, dict labels, Py_hash_t h) except -1:
        """Register a new label set (validated first) and return its number."""
        check_labels(labels, self.reserved)
        cdef list items = sorted(labels.items(), key=_item_name)
        cdef list flat = []
        for name, value in items:
            flat.append(name)
            flat.append(value)
        if self.count == self.hashes_capacity:
            self.grow_hashes()
        if 2 * (self.used + 1) > self.mask + 1:
            self.rebuild(2 * (self.count + 1))
        self.label_sets.append(tuple(flat))
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

    cdef Py_ssize_t remove(self, dict labels) except -2:
        """Forget `labels`; the last series takes its number.

        Returns the removed number (callers move their last value there), or
        -1 when `labels` is not in the table.
        """
        cdef Py_hash_t h = labels_hash(labels)
        cdef Py_ssize_t pos = self.slot_of(h, labels)
        cdef Py_ssize_t series, last, moved_pos
        if pos < 0:
            return -1
        self.hint_series = -1
        series = self.index[pos] - 1
        last = self.count - 1
        self.index[pos] = DELETED
        if series != last:
            moved_pos = self.position_of_number(last)
            self.index[moved_pos] = <int>(series + 1)
            self.label_sets[series] = self.label_sets[last]
            self.hashes[series] = self.hashes[last]
        del self.label_sets[last]
        self.count -= 1
        return series

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
        self.label_sets = []
        self.count = 0
        return self.rebuild(0)

    cdef tuple items_at(self, Py_ssize_t series):
        """The stored label set of `series` as a flat, name-sorted tuple."""
        return <tuple>self.label_sets[series]

    cdef dict labels_at(self, Py_ssize_t series):
        """A fresh dict of the labels of `series`."""
        cdef tuple flat = <tuple>self.label_sets[series]
        cdef dict result = {}
        cdef Py_ssize_t i
        for i in range(0, len(flat), 2):
            result[flat[i]] = flat[i + 1]
        return result


def _item_name(item):
    return item[0]
