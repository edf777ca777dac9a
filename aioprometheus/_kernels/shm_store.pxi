# Multi-process mode's store: one process's series in a memory-mapped file.
#
# Each worker of a pre-fork server writes a store of its own and no other;
# any process reads them all (aggregate.pxi). The file is a header, then
# records appended one after another. A record is written whole first and
# then published by one release store of the header's `published` offset, so
# a reader, which loads that offset with acquire and reads no further, sees
# whole records only, whatever became of the writer (SIGKILL included).
#
# A series' values live inside its SERIES record, as aligned 8-byte words
# that never move: the owning metric keeps them equal to its in-process
# values, storing each word whole (so a reader never sees one torn).
#
# Layout (native byte order; every record 8-byte aligned, its size a multiple of 8):
#   header  "AIOPSTOR", u32 version, u32 header bytes, u64 pid, u64 start
#           token, u64 published, u64 flags (ARCHIVED)
#   record  u32 type, u32 bytes (the whole record), then by type:
#     PAD       nothing: filler up to the end of a mapped chunk
#     METRIC    u32 id, u32 kind, u32 gauge mode, u32 nbounds, f64 bounds[nbounds],
#               texts (name, help, unit, OpenMetrics type, const label key...)
#     SERIES    u32 metric id, u32 nwords, u64 words[nwords], texts (label key)
#     REMOVE    u64 file offset of the SERIES record that is gone
#     CLEAR     u32 metric id: all its series are gone
#     ABSORBED  texts: the store files this archive has folded in
#   texts: u32 count, then per text u32 length and its UTF-8 bytes.

from posix.fcntl cimport O_CLOEXEC, O_CREAT, O_EXCL, O_RDWR, open as c_open
from posix.mman cimport MAP_FAILED, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap
from posix.unistd cimport close as c_close, ftruncate

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* A value word stored or loaded whole (aligned 8 bytes, never torn). */
    static inline void aiop_store_word(uint64_t* p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELAXED);
    }
    static inline uint64_t aiop_load_word(const uint64_t* p) {
        return __atomic_load_n(p, __ATOMIC_RELAXED);
    }
    static inline void aiop_store_double(uint64_t* p, double d) {
        uint64_t v; memcpy(&v, &d, 8); __atomic_store_n(p, v, __ATOMIC_RELAXED);
    }
    static inline double aiop_load_double(const uint64_t* p) {
        uint64_t v = __atomic_load_n(p, __ATOMIC_RELAXED); double d; memcpy(&d, &v, 8);
        return d;
    }
    /* The publishing store and the load that pairs with it. */
    static inline void aiop_publish(uint64_t* p, uint64_t v) {
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    }
    static inline uint64_t aiop_published(const uint64_t* p) {
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
    }
    """
    void store_word "aiop_store_word"(uint64_t* p, uint64_t v) noexcept nogil
    uint64_t load_word "aiop_load_word"(const uint64_t* p) noexcept nogil
    void store_double "aiop_store_double"(uint64_t* p, double d) noexcept nogil
    double load_double "aiop_load_double"(const uint64_t* p) noexcept nogil
    void publish_offset "aiop_publish"(uint64_t* p, uint64_t v) noexcept nogil
    uint64_t published_offset "aiop_published"(const uint64_t* p) noexcept nogil

cdef extern from "errno.h":
    int errno

cdef const char* STORE_MAGIC = b"AIOPSTOR"

cdef enum:
    STORE_VERSION = 1
    HEADER_BYTES = 64
    HEADER_PID = 16            # byte offsets of the header's words
    HEADER_TOKEN = 24
    HEADER_PUBLISHED = 32
    HEADER_FLAGS = 40
    STORE_ARCHIVED = 1         # flag: an archive of dead workers' series
    CHUNK_BYTES = 1 << 20      # the file grows, and is mapped, a chunk at a time
    RECORD_HEAD = 8

cdef enum:
    RECORD_PAD = 1
    RECORD_METRIC = 2
    RECORD_SERIES = 3
    RECORD_REMOVE = 4
    RECORD_CLEAR = 5
    RECORD_ABSORBED = 6

cdef enum:                      # the kinds a store keeps
    STORED_COUNTER = 1
    STORED_GAUGE = 2
    STORED_HISTOGRAM = 3
    STORED_SUMMARY = 4

cdef enum:
    SCALAR_WORDS = 3            # a counter or gauge series: value, is-float flag, time set

# Gauge modes, as prometheus_client names them: how the workers' values of one
# series combine; the live ones leave out the values of dead workers.
GAUGE_MODES = ("all", "liveall", "sum", "livesum", "min", "livemin", "max", "livemax",
               "mostrecent", "livemostrecent")
cdef enum:
    GAUGE_ALL = 0
    GAUGE_SUM = 2
    GAUGE_MIN = 4
    GAUGE_MAX = 6
    GAUGE_MOSTRECENT = 8


cdef inline uint64_t aligned8(uint64_t n) noexcept nogil:
    return (n + 7) & ~(<uint64_t>7)


cdef uint64_t texts_bytes(tuple texts) except 0:
    """Bytes `texts` (exact strs) take in a record, unpadded."""
    cdef uint64_t total = 4
    cdef Py_ssize_t n
    for text in texts:
        PyUnicode_AsUTF8AndSize(text, &n)
        total += 4 + <uint64_t>n
    return total


cdef char* write_texts(char* at, tuple texts) noexcept:
    """Write `texts` (already measured by texts_bytes) at `at`; the end."""
    cdef Py_ssize_t n
    cdef const char* utf8
    cdef uint32_t count = <uint32_t>len(texts)
    memcpy(at, &count, 4)
    at += 4
    for text in texts:
        utf8 = PyUnicode_AsUTF8AndSize(text, &n)
        count = <uint32_t>n
        memcpy(at, &count, 4)
        memcpy(at + 4, utf8, n)
        at += 4 + n
    return at


cdef class StoreWriter:
    """One process's store, open for appending (the owner writes, nobody else)."""

    cdef readonly str path
    cdef int fd
    cdef char** bases           # the mapped chunks, in file order
    cdef uint64_t* starts       # their file offsets
    cdef uint64_t* lengths
    cdef Py_ssize_t nchunks
    cdef uint64_t used          # file offset of the next record
    cdef uint64_t end           # file offset where the last chunk ends
    cdef uint32_t next_metric_id

    def __cinit__(self, str path, uint64_t pid, uint64_t token, bint archived=False):
        """Create the store file `path` (which must not exist) for process
        `pid` (`token`: its start time, telling it from a later process that
        gets the same pid)."""
        self.fd = -1
        encoded = path.encode()
        self.fd = c_open(encoded, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if self.fd < 0:
            raise OSError(errno, f"cannot create the store {path!r}")
        self.path = path
        self.grow(HEADER_BYTES)
        cdef char* header = self.bases[0]
        memcpy(header, STORE_MAGIC, 8)
        (<uint32_t*>(header + 8))[0] = STORE_VERSION
        (<uint32_t*>(header + 12))[0] = HEADER_BYTES
        (<uint64_t*>(header + HEADER_PID))[0] = pid
        (<uint64_t*>(header + HEADER_TOKEN))[0] = token
        (<uint64_t*>(header + HEADER_FLAGS))[0] = STORE_ARCHIVED if archived else 0
        self.used = HEADER_BYTES
        publish_offset(<uint64_t*>(header + HEADER_PUBLISHED), HEADER_BYTES)

    def __dealloc__(self):
        cdef Py_ssize_t i
        for i in range(self.nchunks):
            munmap(self.bases[i], self.lengths[i])
        free(self.bases)
        free(self.starts)
        free(self.lengths)
        if self.fd >= 0:
            c_close(self.fd)

    cdef int grow(self, uint64_t need) except -1:
        """Map one more chunk at the file's end, at least `need` bytes long."""
        cdef uint64_t length = CHUNK_BYTES
        while length < need:
            length *= 2
        cdef char** bases = <char**>realloc(self.bases, (self.nchunks + 1) * sizeof(char*))
        if bases == NULL:
            raise MemoryError()
        self.bases = bases
        cdef uint64_t* starts = <uint64_t*>realloc(self.starts, (self.nchunks + 1) * 8)
        if starts == NULL:
            raise MemoryError()
        self.starts = starts
        cdef uint64_t* lengths = <uint64_t*>realloc(self.lengths, (self.nchunks + 1) * 8)
        if lengths == NULL:
            raise MemoryError()
        self.lengths = lengths
        if ftruncate(self.fd, self.end + length) != 0:
            raise OSError(errno, f"cannot grow the store {self.path!r}")
        cdef void* base = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED,
                               self.fd, self.end)
        if base == MAP_FAILED:
            raise OSError(errno, f"cannot map the store {self.path!r}")
        self.bases[self.nchunks] = <char*>base
        self.starts[self.nchunks] = self.end
        self.lengths[self.nchunks] = length
        self.nchunks += 1
        self.end += length
        return 0

    cdef char* begin(self, uint32_t kind, uint64_t nbytes) except NULL:
        """Room for a record of `nbytes` (a multiple of 8) at the end, zeroed,
        its head written; the caller fills it, then commit()s it. Until then
        it is invisible, and the next begin() reuses the room."""
        cdef Py_ssize_t last = self.nchunks - 1
        cdef char* at
        if self.used + nbytes > self.end:
            if self.used < self.end:     # the rest of this chunk: padding
                at = self.bases[last] + (self.used - self.starts[last])
                (<uint32_t*>at)[0] = RECORD_PAD
                (<uint32_t*>at)[1] = <uint32_t>(self.end - self.used)
            self.grow(nbytes)
            self.used = self.starts[self.nchunks - 1]
            last = self.nchunks - 1
        at = self.bases[last] + (self.used - self.starts[last])
        memset(at, 0, nbytes)
        (<uint32_t*>at)[0] = kind
        (<uint32_t*>at)[1] = <uint32_t>nbytes
        return at

    cdef void commit(self, uint64_t nbytes) noexcept:
        """Publish the record begin() gave room for."""
        self.used += nbytes
        publish_offset(<uint64_t*>(self.bases[0] + HEADER_PUBLISHED), self.used)

    cdef uint64_t offset_of(self, const char* record) noexcept:
        """The file offset of a record this writer wrote."""
        cdef Py_ssize_t i
        for i in range(self.nchunks):
            if self.bases[i] <= record < self.bases[i] + self.lengths[i]:
                return self.starts[i] + <uint64_t>(record - self.bases[i])
        return 0

    cdef uint32_t add_metric(self, uint32_t kind, uint32_t mode, const double* bounds,
                             uint32_t nbounds, tuple texts) except? 0:
        """Write and publish a METRIC record; its id."""
        cdef uint64_t nbytes = aligned8(RECORD_HEAD + 16 + 8 * <uint64_t>nbounds
                                        + texts_bytes(texts))
        cdef char* at = self.begin(RECORD_METRIC, nbytes)
        cdef uint32_t metric_id = self.next_metric_id + 1
        (<uint32_t*>at)[2] = metric_id
        (<uint32_t*>at)[3] = kind
        (<uint32_t*>at)[4] = mode
        (<uint32_t*>at)[5] = nbounds
        if nbounds:
            memcpy(at + 24, bounds, 8 * nbounds)
        write_texts(at + 24 + 8 * nbounds, texts)
        self.commit(nbytes)
        self.next_metric_id = metric_id
        return metric_id

    cdef uint64_t* begin_series(self, uint32_t metric_id, uint32_t nwords, tuple key,
                                uint64_t* nbytes) except NULL:
        """Room for a SERIES record (unpublished; see begin); its value words,
        zero. *nbytes is what commit() then takes."""
        nbytes[0] = aligned8(RECORD_HEAD + 8 + 8 * <uint64_t>nwords + texts_bytes(key))
        cdef char* at = self.begin(RECORD_SERIES, nbytes[0])
        (<uint32_t*>at)[2] = metric_id
        (<uint32_t*>at)[3] = nwords
        write_texts(at + 16 + 8 * nwords, key)
        return <uint64_t*>(at + 16)

    cdef int remove_series(self, uint64_t* words) except -1:
        """Publish that the series whose words these are is gone."""
        cdef char* at = self.begin(RECORD_REMOVE, 16)
        (<uint64_t*>(at + 8))[0] = self.offset_of(<char*>words - 16)
        self.commit(16)
        return 0

    cdef int clear_metric(self, uint32_t metric_id) except -1:
        cdef char* at = self.begin(RECORD_CLEAR, 16)
        (<uint32_t*>at)[2] = metric_id
        self.commit(16)
        return 0

    def add_absorbed(self, names):
        """Record the store files this archive folded in."""
        cdef tuple texts = tuple([exact_text(name) for name in names])
        cdef uint64_t nbytes = aligned8(RECORD_HEAD + texts_bytes(texts))
        write_texts(self.begin(RECORD_ABSORBED, nbytes) + RECORD_HEAD, texts)
        self.commit(nbytes)

    def close(self):
        """Unmap and close the file (the store stays as written)."""
        cdef Py_ssize_t i
        for i in range(self.nchunks):
            munmap(self.bases[i], self.lengths[i])
        self.nchunks = 0
        if self.fd >= 0:
            c_close(self.fd)
            self.fd = -1


cdef uint32_t metric_record(StoreWriter store, Metric metric) except? 0:
    """Write `metric`'s METRIC record into `store`; its id there."""
    cdef uint32_t kind, nbounds = 0
    cdef const double* bounds = NULL
    if isinstance(metric, CounterCore):
        kind = STORED_COUNTER
    elif isinstance(metric, GaugeCore):
        kind = STORED_GAUGE
    elif isinstance(metric, HistogramCore):
        kind = STORED_HISTOGRAM
        bounds = (<HistogramCore>metric).bounds
        nbounds = <uint32_t>(<HistogramCore>metric).nbounds
    elif isinstance(metric, SummaryCore):
        kind = STORED_SUMMARY
    else:
        raise TypeError(f"{type(metric).__name__} cannot be kept in a multi-process store")
    cdef tuple texts = (metric.metric_name, metric.doc_text, metric.unit_text,
                        metric.openmetrics_kind or "") + metric.const_key
    return store.add_metric(kind, metric.gauge_mode, bounds, nbounds, texts)


cdef object store_source = None


def set_store_source(source):
    """Multi-process mode's hook: `source()` gives this process's StoreWriter
    (made on first use, and again in a forked child); None turns it off."""
    global store_source
    store_source = source


cdef StoreWriter process_store():
    if store_source is None:
        raise RuntimeError("multi-process mode is not set up (aioprometheus.multiprocess)")
    store = store_source()
    if not isinstance(store, StoreWriter):
        raise TypeError(f"the store source gave {type(store).__name__}, not a StoreWriter")
    return <StoreWriter>store
