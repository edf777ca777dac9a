# The ASGI middleware's route table: which series a response increments,
# by (head, method, status), found by the exchange (exchange.pxi) without
# running Python code or allocating.
#
# The head is the route the router left in scope["route"], matched by
# identity (the entry holds it, so its address is never another's), or, for
# a request the router matched to no route, the full path, an exact str
# matched by value; the method is an exact str, the status a C long. The
# slots are a list (owning the entries, seen by the GC) searched by linear
# probing, at most half full: a full table starts again. Whatever the table
# lets go of (an entry, and through it a route or series) is released only
# once the table is whole again, so code a release runs finds it whole.

from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.object cimport PyObject_Hash


@cython.final
cdef class RouteEntry:
    """One (head, method, status) and its response's series: (requests,
    responses, status code) series or None (an excluded path), then the
    duration histogram series, or True when untimed."""

    cdef readonly object head
    cdef readonly bint routed
    cdef readonly str method
    cdef readonly long status
    cdef readonly tuple series

    cdef inline bint matches(self, object head, bint routed, str method,
                             long status) except -1:
        """Whether this is that key's entry (C comparisons of exact str)."""
        if self.status != status or self.routed != routed:
            return False
        if self.head is not head and (routed or <str>self.head != <str>head):
            return False
        return self.method is method or self.method == method


cdef inline bint fits_long(object status, long* code) except -1:
    """Whether `status` (an exact int) fits a C long, stored in `code`."""
    cdef int overflow = 0
    code[0] = PyLong_AsLongAndOverflow(status, &overflow)
    return overflow == 0


cdef inline bint keyable(object head, bint routed, object method, object status,
                         long* code) except -1:
    """Whether the exchange could look that key up: an exact str method, an
    exact int status that fits a C long (in `code`), and an unrouted head
    an exact str."""
    if type(method) is not str or type(status) is not int:
        return False
    return fits_long(status, code) and (routed or type(head) is str)


@cython.final
cdef class RouteTable:
    """The exchange's table (see the top of this file)."""

    cdef list slots
    cdef Py_ssize_t capacity
    cdef Py_ssize_t count
    cdef unsigned int shift

    def __cinit__(self, Py_ssize_t capacity):
        if capacity < 1:
            raise ValueError("a route table holds at least one entry")
        cdef Py_ssize_t size = 2
        self.shift = 63
        while size < 2 * capacity:
            size *= 2
            self.shift -= 1
        self.capacity = capacity
        self.slots = [None] * size

    cdef inline Py_ssize_t first_slot(self, object head, bint routed, str method,
                                      long status) except -1:
        cdef unsigned long long h
        if routed:
            h = <unsigned long long><size_t><void*>head >> 4
        else:
            h = <unsigned long long>PyObject_Hash(head)   # an exact str: C
        cdef Py_ssize_t length = len(method)
        cdef Py_UCS4 first = 0
        if length:
            first = method[0]
        h = (h * 31 + <unsigned long long>length) * 31 + <unsigned long long>first
        h = h * 31 + <unsigned long long>status
        return <Py_ssize_t>((h * 0x9E3779B97F4A7C15ULL) >> self.shift)

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef Py_ssize_t slot_of(self, object head, bint routed, str method,
                            long status) except -1:
        """The slot holding that key's entry, else the empty slot where it
        goes (at most half the slots are taken, so there is one)."""
        cdef list slots = self.slots
        cdef Py_ssize_t mask = len(slots) - 1
        cdef Py_ssize_t i = self.first_slot(head, routed, method, status) & mask
        cdef object slot
        while True:
            slot = slots[i]
            if slot is None or (<RouteEntry>slot).matches(head, routed, method, status):
                return i
            i = (i + 1) & mask

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef RouteEntry find(self, object head, bint routed, str method, long status):
        """The entry of that key, or None."""
        return self.slots[self.slot_of(head, routed, method, status)]

    def remember(self, head, bint routed, method, status, tuple series):
        """Keep `series` for responses of `status` to `method` on `head` (a
        route, or the unrouted full path): ignored unless `method` is an
        exact str, `status` an exact int that fits a C long, and an unrouted
        head an exact str, since only those are looked up."""
        cdef long code
        if not keyable(head, routed, method, status, &code):
            return
        if len(series) != 4:
            raise ValueError("a response's series are four")
        cdef RouteEntry entry = RouteEntry.__new__(RouteEntry)
        entry.head = head
        entry.routed = routed
        entry.method = <str>method
        entry.status = code
        entry.series = series
        dropped = None   # what the table lets go of, once it is whole
        if self.count >= self.capacity:
            dropped = self.slots
            self.slots = [None] * len(dropped)
            self.count = 0
        cdef Py_ssize_t i = self.slot_of(head, routed, <str>method, code)
        replaced = self.slots[i]   # the key's entry until now, or None
        self.slots[i] = entry
        if replaced is None:
            self.count += 1

    def get(self, head, bint routed, method, status):
        """The series kept for that key, or None."""
        cdef long code
        if not keyable(head, routed, method, status, &code):
            return None
        entry = self.find(head, routed, <str>method, code)
        return None if entry is None else entry.series

    def clear(self):
        """Forget every entry."""
        released = self.slots
        self.slots = [None] * len(released)
        self.count = 0

    def __len__(self):
        return self.count

    def keys(self):
        """The (head, method, status) of each entry."""
        return [(e.head, e.method, e.status) for e in self.slots if e is not None]
