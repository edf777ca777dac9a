# Quantile estimator kernel for Summary metrics (included by _core.pyx).
#
# Greenwald-Khanna (GK) summary at the smallest eps of the invariants, fed in
# sorted batches.  See the QuantileEstimator docstring for the algorithm, the
# error bound and its proof.  Everything on the observe path is plain C: a
# double buffer, a tuple array, malloc/realloc/free, an LSD radix sort.

# (the shared C imports are in _core.pyx)


ctypedef struct GKTuple:
    double v      # a stored observation
    int64_t g     # rmin(this) - rmin(previous stored tuple)
    int64_t d     # rmax(this) - rmin(this)


cdef enum:
    PENDING_FIRST = 16       # first buffer allocation (doubles), on first insert
    PENDING_MAX = 2048       # buffer size at which a batch is merged ...
    PENDING_LIMIT = 16384    # ... unless the summary is larger (tiny eps)
    SMALL_SORT = 32      # insertion sort below this batch size


cdef inline uint64_t sort_key(double x) noexcept nogil:
    # Map a non-NaN double to an unsigned key with the same order
    # (-inf < negatives < -0.0 < +0.0 < positives < +inf).
    cdef uint64_t u
    memcpy(&u, &x, 8)
    if u >> 63:
        return ~u
    return u | (<uint64_t>1 << 63)


cdef inline double from_sort_key(uint64_t u) noexcept nogil:
    cdef double x
    if u >> 63:
        u &= ~(<uint64_t>1 << 63)
    else:
        u = ~u
    memcpy(&x, &u, 8)
    return x


cdef int compare_doubles(const void* a, const void* b) noexcept nogil:
    cdef double x = (<const double*>a)[0]
    cdef double y = (<const double*>b)[0]
    return (x > y) - (x < y)


cdef void sort_doubles(double* a, Py_ssize_t m) noexcept nogil:
    """Sort m non-NaN doubles ascending, in place."""
    cdef Py_ssize_t i, j, b, c, off
    cdef double x
    cdef uint64_t key
    cdef uint64_t* src
    cdef uint64_t* dst
    cdef uint64_t* tmp
    cdef uint32_t* cnt
    cdef uint32_t counts[8 * 256]
    cdef int shift
    if m < SMALL_SORT:
        for i in range(1, m):
            x = a[i]
            j = i - 1
            while j >= 0 and a[j] > x:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = x
        return
    src = <uint64_t*>malloc(2 * m * sizeof(uint64_t))
    if src == NULL:
        qsort(a, m, sizeof(double), compare_doubles)
        return
    dst = src + m
    # LSD radix sort, 8 passes of 8 bits; one counting pass for all digits,
    # passes whose digit is the same for every key are skipped.
    memset(counts, 0, sizeof(counts))
    for i in range(m):
        key = sort_key(a[i])
        src[i] = key
        counts[key & 255] += 1
        counts[256 + ((key >> 8) & 255)] += 1
        counts[512 + ((key >> 16) & 255)] += 1
        counts[768 + ((key >> 24) & 255)] += 1
        counts[1024 + ((key >> 32) & 255)] += 1
        counts[1280 + ((key >> 40) & 255)] += 1
        counts[1536 + ((key >> 48) & 255)] += 1
        counts[1792 + (key >> 56)] += 1
    for b in range(8):
        shift = 8 * b
        cnt = counts + b * 256
        if cnt[(src[0] >> shift) & 255] == <uint32_t>m:
            continue
        off = 0
        for j in range(256):
            c = cnt[j]
            cnt[j] = <uint32_t>off
            off += c
        for i in range(m):
            key = src[i]
            j = <Py_ssize_t>((key >> shift) & 255)
            dst[cnt[j]] = key
            cnt[j] += 1
        tmp = src
        src = dst
        dst = tmp
    for i in range(m):
        a[i] = from_sort_key(src[i])
    # the allocation starts at whichever of src/dst is lower
    free(src if src < dst else dst)


cdef bint grow_pending(double** buffer, Py_ssize_t* capacity, Py_ssize_t ntuples) noexcept:
    """Grow a full pending buffer that feeds a summary of `ntuples` tuples:
    x4 up to PENDING_MAX, further (x2, up to PENDING_LIMIT) while the summary
    holds more tuples than the buffer (so a merge costs O(1) per inserted
    value). False when it should be merged instead (or memory ran out)."""
    cdef Py_ssize_t cap = capacity[0]
    cdef double* grown
    if cap == 0:
        cap = PENDING_FIRST
    elif cap < PENDING_MAX:
        cap = cap * 4
        if cap > PENDING_MAX:
            cap = PENDING_MAX
    elif cap < ntuples and cap < PENDING_LIMIT:
        cap = cap * 2
    else:
        return False
    grown = <double*>realloc(buffer[0], cap * sizeof(double))
    if grown == NULL:
        return False
    buffer[0] = grown
    capacity[0] = cap
    return True


cdef inline int64_t compress_threshold(double eps, int64_t n) noexcept nogil:
    # floor(2 * eps * n), nudged down so floating-point rounding can only
    # make the summary stricter, never looser than the proven bound.
    cdef double t = 2.0 * eps * <double>n
    t -= t * 1e-12
    if t < 0.0:
        return 0
    return <int64_t>floor(t)


DEFAULT_QUANTILE_INVARIANTS = ((0.50, 0.05), (0.90, 0.01), (0.99, 0.001))


@cython.final
cdef class QuantileEstimator:
    """Streaming quantile estimator with a proven rank-error bound.

    Algorithm: a Greenwald-Khanna (GK) summary run at ``eps = min(eps_i)``
    over the invariants ``((phi_i, eps_i), ...)``.  Observations are appended
    to a C buffer of doubles (grown lazily: 16, 64, 256, 1024, 2048); when the
    buffer is full, or on ``query``, it is sorted (radix sort) and merged into
    the summary in one right-to-left pass that also compresses.

    The summary is a sorted list of stored observations ``v_i`` with integers
    ``g_i, d_i``; ``rmin_i = g_1 + ... + g_i`` and ``rmax_i = rmin_i + d_i``.
    Equal values are ordered by arrival, so every observation has one rank.

    Guarantee (deterministic, any input order): for any ``phi`` in [0, 1],
    ``query(phi)`` returns an observation whose rank ``r`` in the sorted
    stream of the ``n`` inserted values satisfies ``|r - phi*n| <= eps*n``
    whenever some rank in 1..n does; otherwise (tiny ``n``) it returns the
    observation whose rank is nearest to ``phi*n``.  Since the bound is
    ``eps_min*n`` for every phi, each invariant ``(phi_i, eps_i)`` holds.

    Proof sketch.  (I1) ``rmin_i <= rank(v_i) <= rmax_i``; (I2) the minimum
    and the maximum are stored exactly; (I3) ``g_i + d_i <= max(1, 2*eps*n)``.
    A batch value x placed before the stored tuple s (first with
    ``v_s > x``) gets ``g = 1, d = g_s + d_s - 1`` (``d = 0`` past the
    maximum): every old value <= x precedes s, so I1 holds, and
    ``g + d = g_s + d_s`` keeps I3 (n only grows).  Compression removes
    tuple i and adds g_i to g_(i+1) only if ``g_i + g_(i+1) + d_(i+1) <=
    2*eps*n``: bounds of the kept tuples do not change, so I1-I3 hold.  Query
    returns the tuple minimising ``max(r - rmin_i, rmax_i - r)`` for
    ``r = phi*n``.  Let i be the first tuple with ``rmax_i > r + eps*n``: if
    none, the maximum (rank n) is within eps*n; if i is the minimum, rank 1
    is the nearest rank; otherwise tuple i-1 has ``rmax_(i-1) <= r + eps*n``
    and ``rmin_(i-1) >= rmax_i - 2*eps*n > r - eps*n``.  If ``2*eps*n < 1``,
    I3 forces ``g = 1, d = 0``: the summary is exact and the nearest rank is
    returned.

    Space: each merge compresses greedily (right to left, whenever the GK
    condition above allows).  GK prove O((1/eps) * log(eps*n)) tuples for
    their band-restricted variant; for this one the counts are measured (see
    tests/property/test_quantiles.py): about 1/eps tuples on random and
    sorted input, growing with log(n) on adversarial "converging" input
    (3.8/eps at n = 10**6).  Never more than n.

    NaN observations are ignored by the estimator (they have no rank); the
    Summary still counts them in its count and sum.  +Inf and -Inf are
    ordinary values that sort below/above every finite value.  ``query`` on
    an estimator that has seen no (non-NaN) value returns NaN.
    """

    cdef double* pending
    cdef Py_ssize_t npending
    cdef Py_ssize_t pending_cap
    cdef GKTuple* tuples
    cdef Py_ssize_t ntuples
    cdef Py_ssize_t tuples_cap
    cdef int64_t merged            # values merged into the summary
    cdef double eps_min           # smallest eps of the invariants
    cdef tuple invariant_pairs

    def __cinit__(self, invariants=DEFAULT_QUANTILE_INVARIANTS):
        cdef list checked = []
        cdef double phi, eps, min_eps = 1.0
        try:
            items = list(invariants)
        except TypeError:
            raise ValueError(
                f"invariants must be a sequence of (phi, eps) pairs, "
                f"got {invariants!r}"
            ) from None
        if not items:
            raise ValueError("invariants must contain at least one (phi, eps) pair")
        seen = set()
        for item in items:
            try:
                p, e = item
                phi = float(p)
                eps = float(e)
            except (TypeError, ValueError):
                raise ValueError(
                    f"each invariant must be a (phi, eps) pair of numbers, "
                    f"got {item!r}"
                ) from None
            if isinstance(p, bool) or isinstance(e, bool):
                raise ValueError(
                    f"each invariant must be a (phi, eps) pair of numbers, "
                    f"got {item!r}"
                )
            if not (0.0 <= phi <= 1.0):
                raise ValueError(f"invariant quantile phi must be in [0, 1], got {p!r}")
            if not (0.0 < eps < 1.0):
                raise ValueError(
                    f"invariant error eps must be in the open interval (0, 1), "
                    f"got {e!r}"
                )
            if phi in seen:
                raise ValueError(f"duplicate invariant quantile phi={p!r}")
            seen.add(phi)
            checked.append((phi, eps))
            if eps < min_eps:
                min_eps = eps
        self.invariant_pairs = tuple(checked)
        self.eps_min = min_eps
        self.pending = NULL
        self.npending = 0
        self.pending_cap = 0
        self.tuples = NULL
        self.ntuples = 0
        self.tuples_cap = 0
        self.merged = 0

    def __dealloc__(self):
        free(self.pending)
        free(self.tuples)

    # ---------------------------------------------------------------- hot path

    cdef inline void insert(self, double value) noexcept:
        """Add one observation; NaN is ignored.  Amortised O(log) C work."""
        if value != value:
            return
        if self.npending >= self.pending_cap:
            if not self.make_room():
                return  # out of memory: the observation is dropped
        self.pending[self.npending] = value
        self.npending += 1

    cdef int make_room(self) noexcept:
        if grow_pending(&self.pending, &self.pending_cap, self.ntuples):
            return 1
        if self.npending == 0:
            return 0
        return self.merge_pending()

    cdef int merge_pending(self) noexcept:
        """Sort the buffer and merge it into the summary, compressing.

        Returns 1 on success, 0 if memory ran out (summary and buffer are
        then left unchanged)."""
        if self.npending == 0:
            return 1
        sort_doubles(self.pending, self.npending)
        if not self.merge_sorted(self.pending, self.npending):
            return 0
        self.npending = 0
        return 1

    cdef int merge_sorted(self, const double* buf, Py_ssize_t m) noexcept:
        """Merge `m` ascending values into the summary, compressing (a
        sliding window feeds one sorted batch to each of its estimators).

        Returns 1 on success, 0 if memory ran out (summary then unchanged)."""
        cdef Py_ssize_t k = self.ntuples
        cdef Py_ssize_t need, cap, i, j, w, end
        cdef GKTuple* tup
        cdef double v
        cdef int64_t g, d, nd, T, n_new
        if m == 0:
            return 1
        need = k + m
        if need > self.tuples_cap:
            cap = self.tuples_cap + self.tuples_cap // 2
            if cap < need:
                cap = need
            tup = <GKTuple*>realloc(self.tuples, cap * sizeof(GKTuple))
            if tup == NULL:
                return 0
            self.tuples = tup
            self.tuples_cap = cap
        n_new = self.merged + m
        T = compress_threshold(self.eps_min, n_new)
        tup = self.tuples
        # Merge from the back, in place: the output position w never reaches
        # an unread old tuple (w - 1 >= number of items still to emit).
        # A batch value sorts after old tuples with an equal value (it
        # arrived later).  nd = g_s + d_s - 1 for the nearest old tuple s
        # to the right (0 while there is none: values past the max are exact).
        end = k + m
        w = end
        i = k - 1
        j = m - 1
        nd = 0
        while i >= 0 or j >= 0:
            if j >= 0 and (i < 0 or buf[j] >= tup[i].v):
                v = buf[j]
                g = 1
                d = nd
                j -= 1
            else:
                v = tup[i].v
                g = tup[i].g
                d = tup[i].d
                nd = g + d - 1
                i -= 1
            # Right-to-left compression: fold this tuple into the kept tuple
            # to its right when the GK condition allows; never fold the
            # minimum (the last one emitted).
            if w < end and (i >= 0 or j >= 0) and g + tup[w].g + tup[w].d <= T:
                tup[w].g += g
            else:
                w -= 1
                tup[w].v = v
                tup[w].g = g
                tup[w].d = d
        k = end - w
        if w > 0:
            memmove(tup, tup + w, k * sizeof(GKTuple))
        self.ntuples = k
        # Give back the merge room when it is most of the array, so an idle
        # series keeps about k tuples (the next merge reallocs again).
        if self.tuples_cap > 2 * k + 64:
            cap = k + k // 2 + 16
            tup = <GKTuple*>realloc(self.tuples, cap * sizeof(GKTuple))
            if tup != NULL:
                self.tuples = tup
                self.tuples_cap = cap
        self.merged = n_new
        return 1

    # ------------------------------------------------------------------ query

    cpdef double query(self, double phi) except? -1.0:
        """Estimate the phi-quantile (0 <= phi <= 1); NaN if nothing observed.

        Merges buffered observations first.  The returned observation's rank
        is within ``eps*n`` of ``phi*n`` (eps = smallest invariant eps)."""
        cdef Py_ssize_t t
        cdef double r, rmin, rmax, err, best, result
        cdef GKTuple* tup
        if not (0.0 <= phi <= 1.0):
            raise ValueError(f"quantile phi must be in [0, 1], got {phi!r}")
        self.merge_pending()
        if self.ntuples == 0:
            return NAN
        tup = self.tuples
        r = phi * <double>self.merged
        rmin = 0.0
        best = <double>self.merged + 1.0
        result = tup[0].v
        for t in range(self.ntuples):
            rmin += <double>tup[t].g
            if rmin - r > best:
                break  # every later tuple has max(.) >= rmax - r >= rmin - r
            rmax = rmin + <double>tup[t].d
            err = r - rmin
            if rmax - r > err:
                err = rmax - r
            if err <= best:  # ties go to the higher rank (n=3: median is #2)
                best = err
                result = tup[t].v
        return result

    # ------------------------------------------------------- Python interface

    def observe(self, double value):
        """Add one observation (Python wrapper of the C ``insert``)."""
        self.insert(value)

    def reset(self):
        """Forget every observation (keeps the invariants)."""
        self.clear()

    cdef void clear(self) noexcept:
        free(self.pending)
        free(self.tuples)
        self.pending = NULL
        self.tuples = NULL
        self.npending = self.pending_cap = 0
        self.ntuples = self.tuples_cap = 0
        self.merged = 0

    @property
    def invariants(self):
        """The validated invariants as a tuple of (phi, eps) float tuples."""
        return self.invariant_pairs

    @property
    def eps(self):
        """The rank error bound actually guaranteed (smallest invariant eps)."""
        return self.eps_min

    @property
    def inserted(self):
        """Number of (non-NaN) values inserted so far."""
        return self.merged + self.npending

    def __sizeof__(self):
        """Bytes held: the object plus its C buffer and tuple array."""
        return (
            object.__sizeof__(self)
            + self.pending_cap * sizeof(double)
            + self.tuples_cap * sizeof(GKTuple)
        )

    cdef QuantileEstimator copy(self):
        """An independent estimator in the same state (for snapshots)."""
        cdef QuantileEstimator twin = QuantileEstimator.__new__(
            QuantileEstimator, self.invariant_pairs)
        if self.npending:
            twin.pending = <double*>malloc(self.npending * sizeof(double))
            if twin.pending == NULL:
                raise MemoryError()
            memcpy(twin.pending, self.pending, self.npending * sizeof(double))
            twin.npending = twin.pending_cap = self.npending
        if self.ntuples:
            twin.tuples = <GKTuple*>malloc(self.ntuples * sizeof(GKTuple))
            if twin.tuples == NULL:
                raise MemoryError()
            memcpy(twin.tuples, self.tuples, self.ntuples * sizeof(GKTuple))
            twin.ntuples = twin.tuples_cap = self.ntuples
        twin.merged = self.merged
        return twin

    def __reduce__(self):
        """Pickle and copy: the summary tuples and the pending buffer as they are."""
        tuples = [(self.tuples[t].v, self.tuples[t].g, self.tuples[t].d) for t in range(self.ntuples)]
        pending = [self.pending[b] for b in range(self.npending)]
        return (restore_estimator, (self.invariant_pairs, self.merged, tuples, pending))

    cdef int load(self, int64_t n, list tuples, list pending) except -1:
        cdef Py_ssize_t t
        cdef GKTuple* tup = <GKTuple*>malloc((len(tuples) or 1) * sizeof(GKTuple))
        if tup == NULL:
            raise MemoryError()
        for t in range(len(tuples)):
            tup[t].v, tup[t].g, tup[t].d = tuples[t]
        self.clear()
        self.tuples = tup
        self.ntuples = self.tuples_cap = len(tuples)
        self.merged = n
        for value in pending:
            self.insert(value)
        return 0

    def _debug_summary(self):
        """For tests: the summary as a list of (value, rmin, rmax)."""
        cdef Py_ssize_t t
        cdef int64_t rmin = 0
        self.merge_pending()
        out = []
        for t in range(self.ntuples):
            rmin += self.tuples[t].g
            out.append((self.tuples[t].v, rmin, rmin + self.tuples[t].d))
        return out

    @property
    def stored_samples(self):
        """Number of tuples kept in the summary, after merging the buffer."""
        self.merge_pending()
        return self.ntuples


def restore_estimator(invariants, n, tuples, pending):
    """Rebuild a pickled QuantileEstimator."""
    cdef QuantileEstimator est = QuantileEstimator(invariants)
    est.load(n, list(tuples), list(pending))
    return est
