# Native buckets in multi-process mode: a series' native state in its
# process's store (shm_store.pxi), and the exact merge of several stores'.
#
# A NATIVE record holds one series' native state: schema, zero threshold,
# zero count, and per sign room for `capacity` buckets of which the first
# `n` are in use, in the positions they have in the series' own arrays. The
# counts and the zero count are updated in place; a new bucket is written
# into the room and then published by a release store of its side's `n`.
# Whatever moves buckets (sorting, the bucket limit's strategies, a reset),
# or a full side, writes a new record: a series' newest record is its state.
#
#   u64 series record offset, i32 schema, u32 positive capacity, u32 negative
#   capacity, u32 unused, f64 zero threshold, u64 zero count, u64 positive n,
#   u64 negative n, i64 keys[capacities] (positive first), u64 counts[capacities]

cdef enum:
    NATIVE_HEAD = 64            # bytes before the keys, the record head included
    NATIVE_MIN_ROOM = 8


cdef inline uint64_t* native_n(char* record, int sign) noexcept:
    return <uint64_t*>(record + 48 + 8 * sign)


cdef inline int64_t* native_keys(char* record) noexcept:
    return <int64_t*>(record + NATIVE_HEAD)


cdef inline uint64_t* native_counts(char* record) noexcept:
    return <uint64_t*>(record + NATIVE_HEAD) + (<uint32_t*>(record + 20))[0] + (
        <uint32_t*>(record + 24))[0]


cdef int publish_native(StoreWriter store, uint64_t series_offset, NativeState* st,
                        NativeShare* share) except -1:
    """Write and publish a NATIVE record of `st`, with room to grow."""
    cdef NativeSide* sides[2]
    sides[0] = &st.positive
    sides[1] = &st.negative
    cdef uint32_t capacity[2]
    cdef int sign
    cdef Py_ssize_t b, first
    for sign in range(2):
        capacity[sign] = <uint32_t>max(NATIVE_MIN_ROOM, 2 * sides[sign].n)
    cdef uint64_t nbytes = NATIVE_HEAD + 16 * (<uint64_t>capacity[0] + capacity[1])
    cdef char* at = store.begin(RECORD_NATIVE, nbytes)
    (<uint64_t*>(at + 8))[0] = series_offset
    (<int32_t*>(at + 16))[0] = st.schema
    (<uint32_t*>(at + 20))[0] = capacity[0]
    (<uint32_t*>(at + 24))[0] = capacity[1]
    memcpy(at + 32, &st.zero_threshold, 8)
    (<uint64_t*>(at + 40))[0] = st.zero_count
    cdef int64_t* keys = native_keys(at)
    cdef uint64_t* counts = native_counts(at)
    for sign in range(2):
        first = 0 if sign == 0 else capacity[0]
        for b in range(sides[sign].n):
            keys[first + b] = sides[sign].buckets[b].key
            counts[first + b] = sides[sign].buckets[b].count
        native_n(at, sign)[0] = sides[sign].n
        share.layouts[sign] = sides[sign].layout
        share.capacity[sign] = capacity[sign]
    store.commit(nbytes)
    share.record = at
    return 0


cdef int mirror_native(StoreWriter store, uint64_t* series_words, NativeState* st,
                       NativeShare* share, double v) except -1:
    """Bring the store's copy of a series' native state up to date after it
    counted `v`."""
    cdef NativeSide* sides[2]
    sides[0] = &st.positive
    sides[1] = &st.negative
    cdef char* record = share.record
    cdef int sign
    cdef Py_ssize_t b, first, pos
    cdef uint64_t published
    cdef double threshold = 0.0
    if record != NULL:
        memcpy(&threshold, record + 32, 8)
    if (record == NULL or (<int32_t*>(record + 16))[0] != st.schema
            or threshold != st.zero_threshold
            or sides[0].layout != share.layouts[0] or sides[1].layout != share.layouts[1]
            or sides[0].n > share.capacity[0] or sides[1].n > share.capacity[1]):
        return publish_native(store, store.offset_of(<char*>series_words - 16), st, share)
    for sign in range(2):           # buckets appended since: written, then published
        first = 0 if sign == 0 else share.capacity[0]
        published = load_word(native_n(record, sign))
        if <Py_ssize_t>published != sides[sign].n:
            for b in range(published, sides[sign].n):
                native_keys(record)[first + b] = sides[sign].buckets[b].key
                store_word(&native_counts(record)[first + b], sides[sign].buckets[b].count)
            publish_offset(native_n(record, sign), sides[sign].n)
    store_word(<uint64_t*>(record + 40), st.zero_count)
    if fabs(v) > st.zero_threshold:           # (False for NaN)
        sign = 0 if v > 0 else 1
        pos = find_bucket(sides[sign], observation_key(fabs(v), st.schema))
        if pos >= 0:
            first = 0 if sign == 0 else share.capacity[0]
            store_word(&native_counts(record)[first + pos], sides[sign].buckets[pos].count)
    return 0


cdef bint native_record_fits(const char* record, uint32_t nbytes) noexcept:
    """Whether a NATIVE record's fields agree with its size (a reader's check)."""
    cdef int32_t schema = (<int32_t*>(record + 16))[0]
    cdef uint64_t room = <uint64_t>(<uint32_t*>(record + 20))[0] + (<uint32_t*>(record + 24))[0]
    return (nbytes >= NATIVE_HEAD and SCHEMA_MIN <= schema <= SCHEMA_MAX
            and NATIVE_HEAD + 16 * room <= nbytes)


cdef unsigned long long drop_into_zero(NativeSide* side, int schema, double threshold) noexcept:
    """Take out the buckets wholly at or below `threshold`; their count."""
    cdef Py_ssize_t b, out = 0
    cdef unsigned long long moved = 0
    for b in range(side.n):
        if upper_bound(side.buckets[b].key, schema) <= threshold:
            moved += side.buckets[b].count
        else:
            side.buckets[out] = side.buckets[b]
            out += 1
    if out != side.n:
        side.n = out
        side.ordered = 0
        side.layout += 1
        rebuild_index(side)
    return moved


cdef int merge_native(NativeState* into, bint first, char* record) except -1:
    """Add one store's NATIVE record into `into` (`first`: the first this
    time, whose schema and zero threshold it takes). Exact where schemas and
    thresholds agree; else at the coarser of them, as Prometheus merges."""
    cdef int schema = (<int32_t*>(record + 16))[0]
    cdef double threshold
    cdef uint32_t capacity[2]
    cdef uint64_t n
    cdef int sign, shift
    cdef Py_ssize_t b, first_key
    cdef int64_t key
    cdef NativeSide* side
    cdef unsigned long long count
    memcpy(&threshold, record + 32, 8)
    capacity[0] = (<uint32_t*>(record + 20))[0]
    capacity[1] = (<uint32_t*>(record + 24))[0]
    if first:
        into.schema = schema
        into.zero_threshold = threshold
    while schema < into.schema:
        into.schema -= 1
        halve_side(&into.positive)
        halve_side(&into.negative)
    if threshold > into.zero_threshold:
        into.zero_threshold = threshold
        into.zero_count += drop_into_zero(&into.positive, into.schema, threshold)
        into.zero_count += drop_into_zero(&into.negative, into.schema, threshold)
    into.zero_count += load_word(<uint64_t*>(record + 40))
    shift = schema - into.schema
    for sign in range(2):
        side = &into.positive if sign == 0 else &into.negative
        first_key = 0 if sign == 0 else capacity[0]
        n = min(load_word(native_n(record, sign)), <uint64_t>capacity[sign])
        for b in range(<Py_ssize_t>n):
            key = native_keys(record)[first_key + b]
            count = load_word(&native_counts(record)[first_key + b])
            if count == 0 or not -(1 << 30) < key < (1 << 30):
                continue
            key = (key + (1 << shift) - 1) >> shift       # ceil(key / 2^shift)
            if upper_bound(<int32_t>key, into.schema) <= into.zero_threshold:
                into.zero_count += count
            else:
                add_count(side, <int32_t>key, count)
    return 0
