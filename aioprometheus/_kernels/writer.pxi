# Writer: the growable byte buffer every encoder writes into.
#
# The buffer is itself a bytes object, grown by doubling and trimmed to size
# at the end, so an encoder appends without creating Python objects and the
# result is handed over without a final copy of the whole exposition.
#
# The byte-level primitives may run without the GIL (an encoder writing a
# private snapshot, see snapshot.pxi): they take it back only to grow the
# buffer or for a float only Python's repr routine can spell.

cdef extern from "Python.h":
    PyObject* new_bytes "PyBytes_FromStringAndSize"(const char* v, Py_ssize_t n) except NULL
    int _PyBytes_Resize(PyObject** bytes, Py_ssize_t size) except -1
    char* PyBytes_AS_STRING(PyObject* bytes)
    void Py_XDECREF(PyObject* o)
    char* PyOS_double_to_string(double val, char format_code, int precision,
                                int flags, int* ptype) except NULL
    int PY_DTSF_ADD_DOT_0 "Py_DTSF_ADD_DOT_0"
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL


cdef extern from *:
    """
    /* vzeroupper where the CPU has AVX (a no-op elsewhere). */
    #if defined(__x86_64__) && defined(__GNUC__)
    __attribute__((target("avx"))) static void aiop_vzeroupper(void) {
        __builtin_ia32_vzeroupper();
    }
    static void aiop_clear_vector_state(void) {
        if (__builtin_cpu_supports("avx")) aiop_vzeroupper();
    }
    #else
    static void aiop_clear_vector_state(void) {}
    #endif
    """
    void aiop_clear_vector_state() noexcept nogil


def clear_vector_state():
    """Zero the upper halves of the vector registers (x86 vzeroupper).

    Code that uses AVX and returns without this (ISA-L's deflate, which
    compresses scrapes) leaves every later SSE instruction of the thread
    paying a transition penalty: the encoders ran 2.5x slower after it."""
    aiop_clear_vector_state()


cdef const char* DIGITS = b"0123456789"
cdef char DIGIT_PAIRS[200]     # "00" "01" ... "99"
for _k in range(100):
    DIGIT_PAIRS[2 * _k] = DIGITS[_k // 10]
    DIGIT_PAIRS[2 * _k + 1] = DIGITS[_k % 10]
# Bytes that need a backslash: in label values (backslash, newline, quote)
# and in HELP text (backslash, newline).
cdef unsigned char ESCAPE_QUOTED[256]
cdef unsigned char ESCAPE_HELP[256]
memset(ESCAPE_QUOTED, 0, 256)
memset(ESCAPE_HELP, 0, 256)
ESCAPE_QUOTED[<unsigned char>b'\\'] = ESCAPE_QUOTED[<unsigned char>b'\n'] = 1
ESCAPE_QUOTED[<unsigned char>b'"'] = 1
ESCAPE_HELP[<unsigned char>b'\\'] = ESCAPE_HELP[<unsigned char>b'\n'] = 1

# Whole doubles in this range are written as integers (in integer series).
cdef double INT64_SAFE = 9.2e18
# Doubles in this range are tried as short decimal fractions
# first (Python's repr prints this range in fixed notation too).
cdef double FIXED_MIN = 1e-4
cdef double FIXED_MAX = 1e15
cdef double EXACT_INT_MAX = 9007199254740992.0   # 2**53
cdef double POW10[16]
for _k in range(16):
    POW10[_k] = 10.0 ** _k


cdef enum:
    # A streaming Writer's block: ~0.05 ms to compress, and under glibc's
    # 128 KiB mmap threshold, so blocks come from (and go back to) the heap
    # warm, instead of faulting in fresh pages each time.
    STREAM_BLOCK = 120 * 1024


@cython.final
cdef class Writer:
    """Append-only byte buffer with the primitives both exposition formats need.

    A streaming Writer (`stream_to`: an encoder writing a snapshot for a
    scrape) hands each full block to its sink and starts a new one, so a
    compressor in another thread takes it meanwhile, and what was written
    is never copied (growing one block did, with the GIL held: 9 ms for a
    12 MB scrape, which the event loop waited out). A write never spans two
    blocks, so a line can be patched until the next `reserve`. Any other
    Writer grows its one block."""

    cdef PyObject* block      # the bytes object written into (we hold its only reference)
    cdef char* data           # its buffer
    cdef Py_ssize_t length
    cdef Py_ssize_t capacity
    cdef Py_ssize_t shared_at   # length when the encoder last let other threads run
    cdef bint openmetrics       # spell non-finite numbers +Inf, -Inf, NaN (as OpenMetrics must)
    cdef object sink            # a streaming Writer's: takes each block once full

    def __cinit__(self, Py_ssize_t capacity=4096):
        self.block = new_bytes(NULL, capacity if capacity > 16 else 16)
        self.data = PyBytes_AS_STRING(self.block)
        self.capacity = capacity if capacity > 16 else 16
        self.length = 0

    def __dealloc__(self):
        Py_XDECREF(self.block)

    cdef int reserve(self, Py_ssize_t extra) except -1 nogil:
        """Make room for `extra` more contiguous bytes."""
        cdef Py_ssize_t need = self.length + extra
        cdef Py_ssize_t cap = self.capacity if self.capacity > 16 else 16
        if need <= self.capacity:
            return 0
        with gil:
            if self.sink is not None and self.length:
                self.hand_block()
                need = extra
            while cap < need:
                cap *= 2
            if self.block == NULL:
                self.block = new_bytes(NULL, cap)
            else:
                _PyBytes_Resize(&self.block, cap)
            self.data = PyBytes_AS_STRING(self.block)
        self.capacity = cap
        return 0

    cdef int stream_to(self, object sink) except -1:
        """From now on, hand each block to `sink` once full, in blocks of
        STREAM_BLOCK bytes (but for longer lines). The encoders call this
        only for private snapshots: `sink` runs Python code in the middle
        of their walk."""
        self.sink = sink
        if self.capacity > STREAM_BLOCK and self.length == 0:
            Py_XDECREF(self.block)
            self.block = NULL
            self.data = NULL
            self.capacity = 0
            self.reserve(STREAM_BLOCK)
        return 0

    cdef int hand_block(self) except -1:
        """Give the sink the current block, trimmed to what was written. The
        Writer is left with no block at all before the sink (Python code)
        runs, so whatever the sink does, the next write makes a new one."""
        cdef object block
        _PyBytes_Resize(&self.block, self.length)
        block = <object>self.block
        Py_XDECREF(self.block)
        self.block = NULL
        self.data = NULL
        self.length = 0
        self.capacity = 0
        self.shared_at = 0
        self.sink(block)
        return 0

    cdef inline int write(self, const char* src, Py_ssize_t n) except -1 nogil:
        if self.length + n > self.capacity:
            self.reserve(n)
        memcpy(self.data + self.length, src, n)
        self.length += n
        return 0

    cdef inline int write_byte(self, char c) except -1 nogil:
        if self.length + 1 > self.capacity:
            self.reserve(1)
        self.data[self.length] = c
        self.length += 1
        return 0

    cdef int write_text(self, str s) except -1:
        """UTF-8 of `s`, unescaped."""
        cdef Py_ssize_t n
        cdef const char* utf8 = PyUnicode_AsUTF8AndSize(s, &n)
        return self.write(utf8, n)

    cdef int write_escaped(self, str s, bint quote) except -1:
        """UTF-8 of `s` with backslash and newline escaped, and `"` when `quote`."""
        cdef Py_ssize_t n
        cdef const char* utf8 = PyUnicode_AsUTF8AndSize(s, &n)
        return self.write_escaped_utf8(utf8, n, quote)

    cdef int write_escaped_utf8(self, const char* utf8, Py_ssize_t n, bint quote) except -1 nogil:
        """write_escaped for text already in UTF-8."""
        cdef Py_ssize_t i, clean
        cdef const unsigned char* special = &ESCAPE_HELP[0]
        cdef char c
        cdef char* out
        if quote:
            special = &ESCAPE_QUOTED[0]
        # most text needs no escaping: copy the clean prefix in one go
        clean = 0
        while clean < n and not special[<unsigned char>utf8[clean]]:
            clean += 1
        if clean == n:
            return self.write(utf8, n)
        self.reserve(clean + 2 * (n - clean))
        memcpy(self.data + self.length, utf8, clean)
        out = self.data + self.length + clean
        for i in range(clean, n):
            c = utf8[i]
            if special[<unsigned char>c]:
                out[0] = b'\\'
                out[1] = b'n' if c == b'\n' else c
                out += 2
            else:
                out[0] = c
                out += 1
        self.length = out - self.data
        return 0

    cdef int write_int(self, long long v) except -1 nogil:
        """Decimal digits of a signed 64-bit integer."""
        cdef char buf[24]
        cdef int pos = 24
        cdef unsigned long long u
        if v < 0:
            u = <unsigned long long>(-(v + 1)) + 1
        else:
            u = <unsigned long long>v
        while u >= 100:
            pos -= 2
            memcpy(buf + pos, DIGIT_PAIRS + 2 * (u % 100), 2)
            u //= 100
        if u >= 10:
            pos -= 2
            memcpy(buf + pos, DIGIT_PAIRS + 2 * u, 2)
        else:
            pos -= 1
            buf[pos] = DIGITS[u]
        if v < 0:
            pos -= 1
            buf[pos] = b'-'
        return self.write(buf + pos, 24 - pos)

    cdef int write_number(self, double v, bint as_int) except -1 nogil:
        """A sample value as aioprometheus 23.12 wrote it, which Prometheus
        reads exactly: an integer series' whole value as its digits, any other
        value as Python's repr of the float ("1.0", "0.25", "1e+20", "inf",
        "nan")."""
        cdef char* text
        if self.openmetrics and (isinf(v) or isnan(v)):
            return self.write_nonfinite(v)
        if v == floor(v) and -FIXED_MAX < v < FIXED_MAX:
            # whole: its digits, and for a float the ".0" repr adds
            if as_int:
                return self.write_int(<long long>v)
            if v == 0.0:
                return self.write(b"-0.0", 4) if signbit(v) else self.write(b"0.0", 3)
            self.write_int(<long long>v)
            return self.write(b".0", 2)
        if as_int and v == floor(v) and -INT64_SAFE < v < INT64_SAFE:
            return self.write_int(<long long>v)
        if FIXED_MIN <= fabs(v) < FIXED_MAX and self.write_short_fixed(v):
            return 0
        with gil:
            text = PyOS_double_to_string(v, b'r', 0, PY_DTSF_ADD_DOT_0, NULL)
            try:
                self.write(text, strlen(text))
            finally:
                PyMem_Free(text)
        return 0

    cdef int write_nonfinite(self, double v) except -1 nogil:
        if isnan(v):
            return self.write(b"NaN", 3)
        return self.write(b"+Inf", 4) if v > 0 else self.write(b"-Inf", 4)

    cdef bint write_short_fixed(self, double v) except -1 nogil:
        """Write `v` as D / 10**k with the fewest fractional digits k that
        read back as exactly `v` (at least one, as repr writes "1.0"); False
        (nothing written) if none up to 15.

        D / 10**k, both exact doubles, is correctly rounded, as is the
        parse of the decimal text, so the check `D / 10**k == v` proves
        the text round-trips. A fast path for the usual gauge and sum values;
        the caller falls back to Python's shortest repr."""
        cdef int k
        cdef double scaled, digits
        cdef unsigned long long whole, frac, scale
        cdef char buf[24]
        cdef int pos
        for k in range(1, 16):
            scaled = v * POW10[k]
            if not fabs(scaled) < EXACT_INT_MAX:
                return False
            digits = nearbyint(scaled)
            if digits / POW10[k] == v:
                if digits < 0:
                    self.write_byte(b'-')
                    digits = -digits
                scale = <unsigned long long>POW10[k]
                whole = <unsigned long long>digits // scale
                frac = <unsigned long long>digits % scale
                self.write_int(<long long>whole)
                pos = 24
                while pos > 24 - k:
                    pos -= 1
                    buf[pos] = DIGITS[frac % 10]
                    frac //= 10
                buf[pos - 1] = b'.'
                return self.write(buf + pos - 1, k + 1) == 0
        return False

    cdef int write_varint(self, unsigned long long v) except -1 nogil:
        """Protobuf base-128 varint."""
        if self.length + 10 > self.capacity:
            self.reserve(10)
        while v >= 0x80:
            self.data[self.length] = <char>((v & 0x7F) | 0x80)
            self.length += 1
            v >>= 7
        self.data[self.length] = <char>v
        self.length += 1
        return 0

    cdef bytes getvalue(self):
        """Hand over what was written; the Writer starts empty afterwards."""
        cdef bytes result
        if self.block == NULL:
            return b""
        _PyBytes_Resize(&self.block, self.length)
        result = <bytes>self.block
        Py_XDECREF(self.block)
        self.block = NULL
        self.data = NULL
        self.length = 0
        self.capacity = 0
        self.shared_at = 0
        return result


cdef object hand_over(Writer w, object emit):
    """An encoder's result: its bytes, or with `emit` the rest of them
    handed to `emit` (all of them unless it was streaming)."""
    if emit is None:
        return w.getvalue()
    if w.sink is None:
        emit(w.getvalue())
    elif w.length:
        w.hand_block()
    w.sink = None
    return None


cdef bint all_snapshots(list metrics):
    for metric in metrics:
        if not isinstance(metric, Metric) or not (<Metric>metric).is_snapshot:
            return False
    return True


def join_parts(parts):
    """``b"".join(parts)`` for a list of bytes, copying without the GIL (a
    12 MB scrape takes milliseconds to copy, which the event loop would wait
    out). One part is returned as it is."""
    cdef tuple held = tuple(parts)      # our references: the list may change meanwhile
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t k, n = len(held)
    cdef PyObject* block
    cdef bytes result
    cdef char* out
    cdef const char** sources
    cdef Py_ssize_t* sizes
    for part in held:
        if type(part) is not bytes:
            raise TypeError(f"parts must be bytes, got {type(part).__name__}")
        total += len(<bytes>part)
    if n == 1:
        return held[0]
    sources = <const char**>malloc((n + 1) * sizeof(char*))
    sizes = <Py_ssize_t*>malloc((n + 1) * sizeof(Py_ssize_t))
    try:
        if sources == NULL or sizes == NULL:
            raise MemoryError()
        for k in range(n):
            sources[k] = PyBytes_AS_STRING(<PyObject*>held[k])
            sizes[k] = len(<bytes>held[k])
        block = new_bytes(NULL, total)
        result = <bytes>block       # takes a reference of its own
        Py_XDECREF(block)
        out = PyBytes_AS_STRING(block)
        with nogil:
            for k in range(n):
                memcpy(out, sources[k], sizes[k])
                out += sizes[k]
        return result
    finally:
        free(sources)
        free(sizes)
