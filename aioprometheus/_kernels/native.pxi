# Native histograms: sparse exponential buckets, as Prometheus ingests them.
#
# A schema s (-4..8) fixes the growth factor 2^(2^-s) from one bucket bound to
# the next; bucket `key` counts the observations whose absolute value lies in
# (base^(key-1), base^key]. Observations at or below the zero threshold in
# absolute value count in the zero bucket, negative ones in the negative
# buckets (by absolute value), NaN in none (only in count and sum). Each
# series keeps only its populated buckets, per sign an array of (key, count)
# with a hash index on the key, so its memory grows with the populated
# buckets alone.
#
# The key comes from frexp, as in client_golang: |v| = frac * 2^exp with frac
# in [0.5, 1); for s > 0, frac's place among the 2^s bucket bounds within one
# power of two; for s <= 0, the exponent, shifted. ±Inf get the key above
# that of the largest finite double.
#
# Past `max_buckets` populated buckets, each observation applies one of
# client_golang's strategies, in its order: reset the series (count, sum and
# classic buckets too) if its last reset is `min_reset_duration` ago, keeping
# only the observation that overflowed; else schedule that reset and widen
# the zero bucket over the bucket closest to zero, up to
# `max_zero_threshold`; else halve the resolution (schema - 1). A scheduled
# reset happens lazily, at the series' first observation once it is due (no
# background timer). The clock is read in C, when a strategy needs it: the
# system's monotonic clock, or a ManualClock (window.pxi) a test advances.

from libc.float cimport DBL_MAX
from libc.math cimport ldexp, log2
from libc.stdint cimport int32_t, uint16_t

from bisect import bisect_left

cdef enum:
    SCHEMA_MIN = -4
    SCHEMA_MAX = 8
    FIRST_SIDE_CAPACITY = 4

# The 2^s bucket bounds within [0.5, 1) for each schema s > 0, schema s's
# from index 2^s - 2: 2^(j / 2^s - 1) for j in 0..2^s-1.
cdef double FRACTION_BOUNDS[510]
for _s in range(1, SCHEMA_MAX + 1):
    for _j in range(1 << _s):
        FRACTION_BOUNDS[(1 << _s) - 2 + _j] = 2.0 ** (_j / (1 << _s) - 1)

# The same bounds as the mantissas (low 52 bits) of the doubles, so a bucket
# is found from an observation's bits: for schema s from MANTISSA_AT[s], its
# 2^s mantissas and 2^52 above them all. Two observations' fractions compare
# as their mantissas do. CELLS: schema s splits the mantissa range into 2^(s+1)
# cells by its top s+1 bits, narrower than the gap between two bounds, so
# a cell holds at most one bound; from CELL_AT[s], the number of bounds below
# each cell's start. A key is then one cell lookup and one comparison.
cdef enum:
    MANTISSA_BITS = 52
cdef uint64_t MANTISSA_MASK = (<uint64_t>1 << MANTISSA_BITS) - 1
cdef uint64_t BOUND_MANTISSAS[518]
cdef uint16_t BOUND_CELLS[1020]
cdef int MANTISSA_AT[SCHEMA_MAX + 1]
cdef int CELL_AT[SCHEMA_MAX + 1]


cdef inline uint64_t double_bits(double d) noexcept:
    cdef uint64_t bits
    memcpy(&bits, &d, 8)
    return bits


cdef int fill_bound_tables() except -1:
    cdef int s, j
    cdef long long c
    cdef int m_at = 0
    cdef int c_at = 0
    cdef list mantissas
    for s in range(1, SCHEMA_MAX + 1):
        mantissas = [double_bits(FRACTION_BOUNDS[(1 << s) - 2 + j]) & MANTISSA_MASK
                     for j in range(1 << s)] + [MANTISSA_MASK + 1]
        MANTISSA_AT[s] = m_at
        for j in range(len(mantissas)):
            BOUND_MANTISSAS[m_at + j] = mantissas[j]
        CELL_AT[s] = c_at
        for c in range(2 << s):
            below = bisect_left(mantissas, c << (MANTISSA_BITS - 1 - s))
            if bisect_left(mantissas, (c + 1) << (MANTISSA_BITS - 1 - s)) - below > 1:
                raise AssertionError("two bucket bounds in one cell")
            BOUND_CELLS[c_at + c] = below
        m_at += len(mantissas)
        c_at += 2 << s
    return 0

fill_bound_tables()

# A zero threshold of 2^-128: a bucket bound at every schema (client_golang's default).
DEFAULT_ZERO_THRESHOLD = 2.0 ** -128


ctypedef struct NativeBucket:
    int32_t key
    unsigned long long count

ctypedef struct NativeSide:
    NativeBucket* buckets       # every count > 0; the first `ordered` sorted by
                                # key, the rest in the order they came
    int32_t* index              # key -> position + 1 (0: free), open addressing;
                                # NULL: not indexed yet (new, or a snapshot's copy)
    Py_ssize_t n
    Py_ssize_t capacity
    Py_ssize_t ordered
    int index_bits              # the index has 2^index_bits slots, >= 2 * capacity
    unsigned int layout         # bumped whenever buckets move or go (not on append):
                                # a multi-process store's copy must then be rewritten

ctypedef struct NativeState:
    NativeSide positive
    NativeSide negative
    double zero_threshold       # the current one (widened past the bucket limit)
    unsigned long long zero_count
    double last_reset           # clock reading at the series' start or last reset
    int schema                  # the current one (lowered past the bucket limit)
    bint clock_due              # read the clock at the next observation: to
                                # start the reset period, or for a scheduled reset

ctypedef struct NativeShare:    # multi-process mode (native_store.pxi)
    char* record                # the series' newest NATIVE record in its store, or NULL
    unsigned int layouts[2]     # its sides' layouts when it was written
    uint32_t capacity[2]        # its room for buckets, per sign


def pick_schema(double factor):
    """The largest schema (-4..8) whose growth factor 2^(2^-s) is at most
    `factor`; 8 for factors below 2^(2^-8)."""
    if not factor > 1.0 or isinf(factor):
        raise ValueError(f"native_histogram_bucket_factor must be a number > 1, got {factor!r}")
    cdef double level = floor(log2(log2(factor)))
    if level <= -SCHEMA_MAX:
        return SCHEMA_MAX
    if level >= -SCHEMA_MIN:
        return SCHEMA_MIN
    return -<int>level


cdef inline int32_t bucket_key(double a, int schema) noexcept:
    """The key of the bucket of `a` (> 0, finite) at `schema`; from a's bits
    as client_golang's from frexp: a = frac * 2^exp with frac in [0.5, 1)."""
    cdef uint64_t bits = double_bits(a)
    cdef int exp = <int>(bits >> MANTISSA_BITS) - 1022
    cdef uint64_t mantissa = bits & MANTISSA_MASK
    cdef int index
    if exp == -1022:               # subnormal: scaled by 2^64 it is normal
        bits = double_bits(a * 18446744073709551616.0)
        exp = <int>(bits >> MANTISSA_BITS) - 1022 - 64
        mantissa = bits & MANTISSA_MASK
    if schema > 0:
        # the number of bounds below frac
        index = BOUND_CELLS[CELL_AT[schema] + <int>(mantissa >> (MANTISSA_BITS - 1 - schema))]
        index += BOUND_MANTISSAS[MANTISSA_AT[schema] + index] < mantissa
        return index + (exp - 1) * (1 << schema)
    if mantissa == 0:              # frac == 0.5: a power of two, the bound itself
        exp -= 1
    return (exp + (1 << -schema) - 1) >> -schema     # ceil(exp / 2^-schema)


cdef inline int32_t observation_key(double a, int schema) noexcept:
    """bucket_key, with ±Inf one above the largest finite double."""
    if isinf(a):
        return bucket_key(DBL_MAX, schema) + 1
    return bucket_key(a, schema)


cdef double upper_bound(int32_t key, int schema) noexcept:
    """The upper bound of bucket `key` at `schema` (DBL_MAX for the last
    finite bucket, whose computed bound would overflow)."""
    cdef int exp
    cdef double frac
    if schema < 0:
        exp = key * (1 << -schema)
        return DBL_MAX if exp == 1024 else ldexp(1.0, exp)
    frac = 0.5 if schema == 0 else FRACTION_BOUNDS[(1 << schema) - 2 + (key & ((1 << schema) - 1))]
    exp = (key >> schema) + 1
    return DBL_MAX if frac == 0.5 and exp == 1025 else ldexp(frac, exp)


# -- one sign's buckets ---------------------------------------------------------
#
# Observing finds a bucket through the hash index, and a new bucket is
# appended; anything that needs key order (encoding, the bucket limit's
# strategies) sorts the array first (normalize), a no-op unless buckets were
# added since. A side without an index (new, or a snapshot's copy) finds
# nothing: make_room indexes it, before the lookup that may lead to an append.

cdef enum:
    MIN_INDEX_BITS = 3

cdef inline uint32_t index_slot(int32_t key, int bits) noexcept:
    """Fibonacci hashing: the top `bits` bits of key * 2^32 / golden ratio."""
    return (<uint32_t>key * <uint32_t>2654435769u) >> (32 - bits)


cdef inline Py_ssize_t find_bucket(NativeSide* side, int32_t key) noexcept:
    """Position of bucket `key`, or -1 (also when `side` has no index)."""
    cdef uint32_t mask = (<uint32_t>1 << side.index_bits) - 1
    cdef uint32_t at
    cdef int32_t entry
    if side.index == NULL:
        return -1
    at = index_slot(key, side.index_bits)
    while True:
        entry = side.index[at]
        if entry == 0:
            return -1
        if side.buckets[entry - 1].key == key:
            return entry - 1
        at = (at + 1) & mask


cdef inline void index_position(NativeSide* side, Py_ssize_t pos) noexcept:
    cdef uint32_t mask = (<uint32_t>1 << side.index_bits) - 1
    cdef uint32_t at = index_slot(side.buckets[pos].key, side.index_bits)
    while side.index[at] != 0:
        at = (at + 1) & mask
    side.index[at] = <int32_t>(pos + 1)


cdef void rebuild_index(NativeSide* side) noexcept:
    cdef Py_ssize_t pos
    if side.index == NULL:
        return
    memset(side.index, 0, (<size_t>1 << side.index_bits) * sizeof(int32_t))
    for pos in range(side.n):
        index_position(side, pos)


cdef int make_room(NativeSide* side, Py_ssize_t wanted) except -1:
    """Grow `side` (and its index) to hold `wanted` buckets; nothing else
    changes, whether it succeeds or raises."""
    cdef Py_ssize_t cap = side.capacity
    cdef NativeBucket* grown
    cdef int32_t* index
    cdef int bits = MIN_INDEX_BITS
    if wanted > cap:
        cap = FIRST_SIDE_CAPACITY if cap < FIRST_SIDE_CAPACITY else cap
        while cap < wanted:
            cap += cap >> 1
        grown = <NativeBucket*>realloc(side.buckets, cap * sizeof(NativeBucket))
        if grown == NULL:
            raise MemoryError()
        side.buckets = grown
        side.capacity = cap
    while (<Py_ssize_t>1 << bits) < 2 * side.capacity:
        bits += 1
    if side.index == NULL or bits != side.index_bits:
        index = <int32_t*>malloc((<size_t>1 << bits) * sizeof(int32_t))
        if index == NULL:
            raise MemoryError()
        free(side.index)
        side.index = index
        side.index_bits = bits
        rebuild_index(side)
    return 0


cdef inline void append_bucket(NativeSide* side, int32_t key,
                               unsigned long long count) noexcept:
    """Add a bucket for a key `side` lacks; the caller made room for it."""
    side.buckets[side.n].key = key
    side.buckets[side.n].count = count
    index_position(side, side.n)
    side.n += 1


cdef int add_count(NativeSide* side, int32_t key, unsigned long long count) except -1:
    """Add `count` to bucket `key`, made if `side` lacks it (room made
    first: only that may fail, and it comes before any change)."""
    cdef Py_ssize_t pos = find_bucket(side, key)
    if pos < 0:
        make_room(side, side.n + 1)
        pos = find_bucket(side, key)    # the side may just have been indexed
    if pos >= 0:
        side.buckets[pos].count += count
    else:
        append_bucket(side, key, count)
    return 0


cdef void empty_side(NativeSide* side) noexcept:
    side.n = 0
    side.ordered = 0
    side.layout += 1
    rebuild_index(side)


cdef int compare_keys(const void* a, const void* b) noexcept nogil:
    cdef int32_t ka = (<const NativeBucket*>a).key
    cdef int32_t kb = (<const NativeBucket*>b).key
    return (ka > kb) - (ka < kb)


cdef void normalize(NativeSide* side) noexcept:
    """Sort the buckets by key."""
    if side.ordered == side.n:
        return
    qsort(side.buckets, side.n, sizeof(NativeBucket), compare_keys)
    side.ordered = side.n
    side.layout += 1
    rebuild_index(side)


cdef void halve_side(NativeSide* side) noexcept:
    """Merge pairs of buckets into the buckets of the schema one lower: key k
    becomes ceil(k / 2); in key order, equal new keys are adjacent."""
    cdef Py_ssize_t b
    cdef Py_ssize_t out = -1
    cdef int32_t key
    normalize(side)
    for b in range(side.n):
        key = (side.buckets[b].key + 1) >> 1
        if out >= 0 and side.buckets[out].key == key:
            side.buckets[out].count += side.buckets[b].count
        else:
            out += 1
            side.buckets[out].key = key
            side.buckets[out].count = side.buckets[b].count
    side.n = side.ordered = out + 1
    side.layout += 1
    rebuild_index(side)


cdef inline unsigned long long take_first_if(NativeSide* side, int32_t key) noexcept:
    """Remove the lowest bucket if its key is `key`; its count (or 0)."""
    cdef unsigned long long count
    normalize(side)
    if side.n == 0 or side.buckets[0].key != key:
        return 0
    count = side.buckets[0].count
    side.n -= 1
    side.ordered = side.n
    memmove(side.buckets, side.buckets + 1, side.n * sizeof(NativeBucket))
    side.layout += 1
    rebuild_index(side)
    return count


cdef int copy_side(NativeSide* dst, NativeSide* src) except -1:
    """A copy of `src` (sorted first) into `dst`, which owns no arrays: its
    buckets alone, unindexed (a snapshot's copy is only read)."""
    normalize(src)
    if src.n == 0:
        return 0
    dst.buckets = <NativeBucket*>malloc(src.n * sizeof(NativeBucket))
    if dst.buckets == NULL:
        raise MemoryError()
    memcpy(dst.buckets, src.buckets, src.n * sizeof(NativeBucket))
    dst.n = dst.ordered = dst.capacity = src.n
    return 0


cdef void free_side(NativeSide* side) noexcept:
    free(side.buckets)
    free(side.index)


cdef list side_items(NativeSide* side):
    """[(key, count), ...] of a side, in key order."""
    cdef list items = []
    cdef Py_ssize_t b
    normalize(side)
    for b in range(side.n):
        items.append((side.buckets[b].key, side.buckets[b].count))
    return items


cdef int fill_side(NativeSide* side, object pairs) except -1:
    """Set a side's buckets from (key, count) pairs (inverse of side_items)."""
    cdef list items = sorted(pairs)
    cdef Py_ssize_t b
    make_room(side, len(items))
    empty_side(side)
    for b in range(len(items)):
        key, count = items[b]
        if count <= 0 or (b and key == items[b - 1][0]):
            raise ValueError("native buckets need distinct keys and positive counts")
        append_bucket(side, key, count)
    side.ordered = side.n
    return 0


@cython.final
cdef class NativeBuckets:
    """The native part of a HistogramCore: its settings, and per series (by
    the metric's series numbers) the sparse buckets in C."""

    cdef NativeState* states
    cdef Py_ssize_t capacity
    cdef NativeShare* shares            # multi-process mode: per series, its store copy
    cdef readonly int schema             # the initial schema and zero threshold
    cdef readonly double zero_threshold
    cdef readonly double max_zero_threshold
    cdef readonly Py_ssize_t max_buckets   # 0: no limit
    cdef readonly double min_reset_duration   # seconds; 0: never reset
    cdef ManualClock clock               # None: the system's monotonic clock

    def __cinit__(self, int schema, double zero_threshold, Py_ssize_t max_buckets,
                  double min_reset_duration, double max_zero_threshold):
        self.schema = schema
        self.zero_threshold = zero_threshold
        self.max_buckets = max_buckets
        self.min_reset_duration = min_reset_duration
        self.max_zero_threshold = max_zero_threshold

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.states != NULL:
            for i in range(self.capacity):
                free_side(&self.states[i].positive)
                free_side(&self.states[i].negative)
            free(self.states)
        free(self.shares)

    cdef tuple settings(self):
        return (self.schema, self.zero_threshold, self.max_buckets,
                self.min_reset_duration, self.max_zero_threshold)

    # -- storage hooks, called by HistogramCore's --------------------------

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Room for `n` series; new slots own nothing."""
        cdef NativeState* grown
        if n <= self.capacity:
            return 0
        grown = <NativeState*>realloc(self.states, n * sizeof(NativeState))
        if grown == NULL:
            raise MemoryError()
        memset(grown + self.capacity, 0, (n - self.capacity) * sizeof(NativeState))
        self.states = grown
        if self.shares != NULL:
            self.reserve_shares(n)
        self.capacity = n
        return 0

    cdef int reserve_shares(self, Py_ssize_t n) except -1:
        cdef NativeShare* grown = <NativeShare*>realloc(self.shares, n * sizeof(NativeShare))
        if grown == NULL:
            raise MemoryError()
        if self.shares == NULL:
            memset(grown, 0, n * sizeof(NativeShare))
        else:
            memset(grown + self.capacity, 0, (n - self.capacity) * sizeof(NativeShare))
        self.shares = grown
        return 0

    cdef int mirror(self, Py_ssize_t series, StoreWriter store, uint64_t* words,
                    double v) except -1:
        """Multi-process mode: the store's copy of `series` after it counted `v`."""
        if self.shares == NULL:
            self.reserve_shares(self.capacity)
        return mirror_native(store, words, &self.states[series], &self.shares[series], v)

    cdef void start(self, NativeState* st, double now) noexcept:
        """A series' state at its start or reset (its arrays kept, emptied)."""
        empty_side(&st.positive)
        empty_side(&st.negative)
        st.zero_threshold = self.zero_threshold
        st.zero_count = 0
        st.schema = self.schema
        st.last_reset = now
        st.clock_due = isnan(now) and self.min_reset_duration > 0

    cdef int reset(self, Py_ssize_t series) except -1:
        """A new series (its start time is read at its first observation)."""
        self.start(&self.states[series], NAN)
        if self.shares != NULL:
            self.shares[series].record = NULL
        return 0

    cdef int move(self, Py_ssize_t dst, Py_ssize_t src) except -1:
        """Hand series `src`'s state (and arrays) to number `dst`."""
        free_side(&self.states[dst].positive)
        free_side(&self.states[dst].negative)
        self.states[dst] = self.states[src]
        memset(&self.states[src], 0, sizeof(NativeState))
        if self.shares != NULL:
            self.shares[dst] = self.shares[src]
        return 0

    cdef NativeBuckets copy(self, Py_ssize_t n):
        """A copy holding the first `n` series (C work and one allocation of
        the object: run with the garbage collector paused)."""
        cdef NativeBuckets twin = NativeBuckets.__new__(NativeBuckets, *self.settings())
        cdef Py_ssize_t i
        twin.reserve(n or 1)
        for i in range(n):
            twin.states[i] = self.states[i]
            # the twin owns no arrays until copy_side gives it its own
            memset(&twin.states[i].positive, 0, sizeof(NativeSide))
            memset(&twin.states[i].negative, 0, sizeof(NativeSide))
            copy_side(&twin.states[i].positive, &self.states[i].positive)
            copy_side(&twin.states[i].negative, &self.states[i].negative)
        return twin

    # -- observing -----------------------------------------------------------

    cdef inline double time(self) noexcept:
        return monotonic_seconds() if self.clock is None else self.clock.now

    cdef inline int observe(self, Py_ssize_t series, double v) except -1:
        """Count `v` into `series`: 1 if the series was reset first (the
        caller then resets its classic part), 0 if not. Only making room may
        fail, and it comes before any change."""
        cdef NativeState* st = &self.states[series]
        cdef double a = fabs(v)
        cdef NativeSide* side
        cdef Py_ssize_t pos
        if (not st.clock_due and a > st.zero_threshold        # (False for NaN)
                and (self.max_buckets == 0
                     or st.positive.n + st.negative.n <= self.max_buckets)):
            side = &st.positive if v > 0 else &st.negative
            pos = find_bucket(side, observation_key(a, st.schema))
            if pos >= 0:            # the usual case: a bucket the series has
                side.buckets[pos].count += 1
                return 0
        return self.observe_in(st, v)

    cdef int observe_in(self, NativeState* st, double v) except -1:
        """observe(), every case."""
        cdef int was_reset = 0
        cdef double a = fabs(v)
        cdef double now
        if isnan(v):
            return 0
        if st.clock_due:
            now = self.time()
            if isnan(st.last_reset):
                # the series' first observation starts its reset period; both
                # sides get room for a bucket, which a reset then never lacks
                make_room(&st.positive, 1)
                make_room(&st.negative, 1)
                st.last_reset = now
                st.clock_due = False
            elif now - st.last_reset >= self.min_reset_duration:
                self.start(st, now)     # the reset the bucket limit scheduled
                was_reset = 1
        if a <= st.zero_threshold:
            st.zero_count += 1
        else:
            add_count(&st.positive if v > 0 else &st.negative,
                      observation_key(a, st.schema), 1)
        if self.max_buckets and st.positive.n + st.negative.n > self.max_buckets:
            was_reset |= self.limit(st, v)
        return was_reset

    cdef void place(self, NativeState* st, double v) noexcept:
        """Count `v` into a state that has room for it (just emptied)."""
        cdef NativeSide* side
        cdef int32_t key
        cdef Py_ssize_t pos
        cdef double a = fabs(v)
        if a <= st.zero_threshold:
            st.zero_count += 1
            return
        side = &st.positive if v > 0 else &st.negative
        key = observation_key(a, st.schema)
        pos = find_bucket(side, key)
        if pos >= 0:
            side.buckets[pos].count += 1
        else:
            append_bucket(side, key, 1)

    cdef int limit(self, NativeState* st, double v) noexcept:
        """One bucket-limit strategy (see the top of this file); 1 if it reset
        the series."""
        cdef double now
        if self.min_reset_duration > 0 and not st.clock_due:
            now = self.time()
            if now - st.last_reset >= self.min_reset_duration:
                self.start(st, now)
                self.place(st, v)
                return 1
            st.clock_due = True
        if not self.widen_zero_bucket(st):
            self.halve_resolution(st)
        return 0

    cdef bint widen_zero_bucket(self, NativeState* st) noexcept:
        """Move the zero threshold up to the bound of the bucket closest to
        zero, and that bucket (per sign) into the zero bucket, if the
        threshold stays within max_zero_threshold."""
        cdef int32_t key
        cdef double threshold
        if st.zero_threshold >= self.max_zero_threshold:
            return False
        normalize(&st.positive)
        normalize(&st.negative)
        if st.positive.n and st.negative.n:
            key = min(st.positive.buckets[0].key, st.negative.buckets[0].key)
        elif st.positive.n:
            key = st.positive.buckets[0].key
        elif st.negative.n:
            key = st.negative.buckets[0].key
        else:
            return False
        threshold = upper_bound(key, st.schema)
        if threshold > self.max_zero_threshold:
            return False
        st.zero_threshold = threshold
        st.zero_count += take_first_if(&st.positive, key) + take_first_if(&st.negative, key)
        return True

    cdef void halve_resolution(self, NativeState* st) noexcept:
        if st.schema == SCHEMA_MIN:
            return
        st.schema -= 1
        halve_side(&st.positive)
        halve_side(&st.negative)

    # -- reading -------------------------------------------------------------

    cdef dict read(self, Py_ssize_t series):
        """The native state of `series` as Python objects (run with the
        garbage collector paused: nothing else may run while it reads)."""
        cdef NativeState* st = &self.states[series]
        return {"schema": st.schema, "zero_threshold": st.zero_threshold,
                "zero_count": st.zero_count, "positive": dict(side_items(&st.positive)),
                "negative": dict(side_items(&st.negative))}

    cdef tuple export_series(self, Py_ssize_t series):
        cdef NativeState* st = &self.states[series]
        return (st.schema, st.zero_threshold, st.zero_count,
                tuple(side_items(&st.positive)), tuple(side_items(&st.negative)))

    cdef int import_series(self, Py_ssize_t series, tuple data) except -1:
        """Inverse of export_series (into a fresh series, while restoring a
        copy no one else can reach yet); the reset period starts afresh."""
        cdef NativeState* st = &self.states[series]
        schema, zero_threshold, zero_count, positive, negative = data
        if not SCHEMA_MIN <= schema <= SCHEMA_MAX:
            raise ValueError(f"schema {schema} is out of range")
        st.schema = schema
        st.zero_threshold = zero_threshold
        st.zero_count = zero_count
        fill_side(&st.positive, positive)
        fill_side(&st.negative, negative)
        return 0


# -- protobuf: the native fields of io.prometheus.client.Histogram -------------

cdef enum:
    PB_SCHEMA = 0x28            # 5, sint32
    PB_ZERO_THRESHOLD = 0x31    # 6, double
    PB_ZERO_COUNT = 0x38        # 7, uint64
    PB_NEGATIVE_SPAN = 0x4A     # 9, BucketSpan {offset=1 sint32, length=2 uint32}
    PB_NEGATIVE_DELTA = 0x50    # 10, sint64: count minus the previous bucket's
    PB_POSITIVE_SPAN = 0x62     # 12
    PB_POSITIVE_DELTA = 0x68    # 13
    PB_SPAN_OFFSET = 0x08
    PB_SPAN_LENGTH = 0x10
    SPAN_MAX_GAP = 2            # empty buckets written as zero deltas rather than a new span


cdef inline unsigned long long zigzag(long long n) noexcept:
    return (<unsigned long long>n << 1) ^ <unsigned long long>(n >> 63)


cdef int pb_span(Writer w, unsigned char tag, int32_t offset, uint32_t length) except -1:
    cdef unsigned long long zz = zigzag(offset)
    w.write_byte(<char>tag)
    w.write_byte(<char>(2 + varint_size(zz) + varint_size(length)))
    w.write_byte(PB_SPAN_OFFSET)
    w.write_varint(zz)
    w.write_byte(PB_SPAN_LENGTH)
    return w.write_varint(length)


cdef int pb_side(Writer w, NativeSide* side, unsigned char span_tag,
                 unsigned char delta_tag) except -1:
    """Spans, then deltas, of one sign's buckets, as client_golang groups
    them: a gap of up to SPAN_MAX_GAP empty buckets stays in the span."""
    cdef Py_ssize_t b
    cdef int32_t offset, gap, k
    cdef uint32_t length
    cdef long long previous = 0
    if side.n == 0:
        return 0
    normalize(side)
    offset = side.buckets[0].key
    length = 1
    for b in range(1, side.n):
        gap = side.buckets[b].key - side.buckets[b - 1].key - 1
        if gap > SPAN_MAX_GAP:
            pb_span(w, span_tag, offset, length)
            offset = gap
            length = 1
        else:
            length += gap + 1
    pb_span(w, span_tag, offset, length)
    for b in range(side.n):
        gap = 0
        if b:
            gap = side.buckets[b].key - side.buckets[b - 1].key - 1
        if gap <= SPAN_MAX_GAP:
            for k in range(gap):
                pb_varint_field(w, delta_tag, zigzag(-previous))
                previous = 0
        pb_varint_field(w, delta_tag, zigzag(<long long>side.buckets[b].count - previous))
        previous = <long long>side.buckets[b].count
    return 0


cdef int pb_native_fields(Writer w, NativeBuckets native, Py_ssize_t series) except -1:
    """Fields 5 to 13 of series' Histogram message, in field order."""
    cdef NativeState* st = &native.states[series]
    pb_varint_field(w, PB_SCHEMA, zigzag(st.schema) & 0xFFFFFFFF)
    pb_fixed64(w, PB_ZERO_THRESHOLD, st.zero_threshold)
    pb_varint_field(w, PB_ZERO_COUNT, st.zero_count)
    pb_side(w, &st.negative, PB_NEGATIVE_SPAN, PB_NEGATIVE_DELTA)
    if st.positive.n == 0 and st.negative.n == 0 and st.zero_count == 0 and st.zero_threshold == 0:
        # a no-op span: without any native field set it would read as classic
        return pb_span(w, PB_POSITIVE_SPAN, 0, 0)
    return pb_side(w, &st.positive, PB_POSITIVE_SPAN, PB_POSITIVE_DELTA)
