# Snapshot value arrays, kept for the next snapshot.
#
# A scrape copies every metric's value arrays on the event loop
# (snapshot.pxi). Fresh arrays that big come straight from the kernel, and
# the copy then faults in each page it writes: at 100k series the faults
# took 60% of the copy (perf), 1.4-2.4 ms of the loop's time per scrape. So
# the arrays of a snapshot that is done with go to a small cache instead of
# back to the system, and the next snapshot takes them, already mapped.
#
# Only snapshots give and take (Metric.new_array, Metric.drop_array), always
# with the GIL held, which serializes the cache. At most CACHED_BLOCKS are
# kept, the oldest freed first, so the memory held is about one scrape's
# copy of the values.

cdef enum:
    CACHED_BLOCKS = 64
    CACHED_MIN_BYTES = 64 * 1024   # smaller arrays come from malloc's own free lists

ctypedef struct CachedBlock:
    void* data
    size_t size

cdef CachedBlock cached_blocks[CACHED_BLOCKS]   # oldest first
cdef Py_ssize_t ncached = 0


cdef void* take_block(size_t size) noexcept:
    """A block of at least `size` bytes (at most twice that): a cached one
    if there is one, else a new one; NULL if memory is short."""
    cdef Py_ssize_t i, best = -1
    cdef void* data
    if size >= CACHED_MIN_BYTES:
        for i in range(ncached):
            if size <= cached_blocks[i].size <= 2 * size and (
                    best < 0 or cached_blocks[i].size < cached_blocks[best].size):
                best = i
    if best < 0:
        return malloc(size)
    data = cached_blocks[best].data
    forget_cached(best)
    return data


cdef void give_block(void* data, size_t size) noexcept:
    """Keep `data` (`size` bytes, or more) for a later take_block, or free it."""
    global ncached
    if data == NULL:
        return
    if size < CACHED_MIN_BYTES:
        free(data)
        return
    if ncached == CACHED_BLOCKS:
        free(cached_blocks[0].data)
        forget_cached(0)
    cached_blocks[ncached].data = data
    cached_blocks[ncached].size = size
    ncached += 1


cdef void forget_cached(Py_ssize_t i) noexcept:
    global ncached
    memmove(&cached_blocks[i], &cached_blocks[i + 1], (ncached - i - 1) * sizeof(CachedBlock))
    ncached -= 1


def cached_snapshot_bytes():
    """Bytes of snapshot arrays kept for the next snapshot (for tests)."""
    cdef Py_ssize_t i
    cdef size_t total = 0
    for i in range(ncached):
        total += cached_blocks[i].size
    return total
