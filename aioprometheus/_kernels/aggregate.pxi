# Multi-process mode's aggregation: every worker's store (shm_store.pxi)
# merged into one metric per name, which the encoders then write as they
# write a local one.
#
# A StoreReader maps a store read-only and parses its records up to the
# published offset, going on from where it stopped last time. An Aggregation
# keeps the merged metrics and, per store, which merged series each stored
# series adds into; a scrape then only re-adds the value words. It lays the
# merged series out again (from the records, no values) only when a series
# went away, a store came or went, or a store's liveness changed.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from posix.fcntl cimport O_RDONLY
from posix.stat cimport fstat, struct_stat


class StoreError(ValueError):
    """A store file this version cannot read: another version's, or corrupt."""


cdef struct StoredSeries:
    uint64_t words          # file offset of the series' first value word
    Py_ssize_t series       # its place in its reader's series
    Py_ssize_t target       # which merged metric it adds into
    Py_ssize_t number       # the merged series it adds into


cdef inline uint32_t u32_at(const char* p) noexcept:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef class StoreReader:
    """A store file as any process reads it: mapped read-only, its records
    parsed up to the published offset (each refresh goes on from the last).

    A series is kept as its record's offset, metric id and label texts as
    raw bytes (decoded only when the aggregate first meets them)."""

    cdef readonly str path
    cdef int fd
    cdef char* base
    cdef uint64_t mapped
    cdef uint64_t parsed
    cdef readonly uint64_t pid
    cdef readonly uint64_t token
    cdef readonly bint archived
    cdef readonly tuple identity        # the file's (inode, device)
    cdef readonly tuple absorbed        # an archive's folded-in store names
    cdef dict metrics                   # metric id -> (kind, mode, bounds, texts, native)
    cdef uint64_t* offsets              # per series in record order: its record's offset,
    cdef uint32_t* metric_ids           # its metric,
    cdef unsigned char* removed         # whether it is gone,
    cdef uint64_t* native_at            # its newest NATIVE record's offset (0: none),
    cdef list label_blobs               # and its label texts as written (bytes)
    cdef dict number_of_offset          # SERIES offset -> place (made at the first NATIVE)
    cdef Py_ssize_t nseries
    cdef Py_ssize_t series_capacity
    cdef readonly bint lost_series      # a series went away since the aggregate last looked
    cdef Py_ssize_t placed              # series the aggregate has placed
    cdef StoredSeries* entries          # the aggregate's: where each series adds
    cdef Py_ssize_t nentries
    cdef Py_ssize_t entries_capacity

    def __cinit__(self, str path):
        self.fd = -1
        self.path = path
        self.absorbed = ()
        self.metrics = {}
        self.label_blobs = []
        self.fd = c_open(path.encode(), O_RDONLY | O_CLOEXEC)
        if self.fd < 0:
            raise OSError(errno, f"cannot open the store {path!r}")
        cdef struct_stat st
        if fstat(self.fd, &st) != 0:
            raise OSError(errno, f"cannot stat the store {path!r}")
        self.identity = (st.st_ino, st.st_dev)
        self.remap()
        if self.mapped < HEADER_BYTES or memcmp(self.base, STORE_MAGIC, 8) != 0:
            raise StoreError(f"{path}: not an aioprometheus multi-process store")
        cdef uint32_t version = u32_at(self.base + 8)
        if version != STORE_VERSION or u32_at(self.base + 12) != HEADER_BYTES:
            raise StoreError(f"{path}: a store of format version {version}, written by "
                             f"another version of aioprometheus (this one reads "
                             f"version {STORE_VERSION})")
        self.pid = (<uint64_t*>(self.base + HEADER_PID))[0]
        self.token = (<uint64_t*>(self.base + HEADER_TOKEN))[0]
        self.archived = ((<uint64_t*>(self.base + HEADER_FLAGS))[0] & STORE_ARCHIVED) != 0
        self.parsed = HEADER_BYTES

    def __dealloc__(self):
        if self.base != NULL:
            munmap(self.base, self.mapped)
        if self.fd >= 0:
            c_close(self.fd)
        free(self.offsets)
        free(self.metric_ids)
        free(self.removed)
        free(self.native_at)
        free(self.entries)

    cdef int remap(self) except -1:
        """Map the whole file as long as it is now."""
        cdef struct_stat st
        if fstat(self.fd, &st) != 0:
            raise OSError(errno, f"cannot stat the store {self.path!r}")
        if <uint64_t>st.st_size == self.mapped:
            return 0
        if self.base != NULL:
            munmap(self.base, self.mapped)
            self.base = NULL
            self.mapped = 0
        if st.st_size == 0:
            return 0
        cdef void* base = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, self.fd, 0)
        if base == MAP_FAILED:
            raise OSError(errno, f"cannot map the store {self.path!r}")
        self.base = <char*>base
        self.mapped = st.st_size
        return 0

    def refresh(self):
        """Parse what was published since the last refresh."""
        cdef uint64_t published = published_offset(<uint64_t*>(self.base + HEADER_PUBLISHED))
        if published > self.mapped:
            self.remap()           # the writer grew the file before it published
            if published > self.mapped:
                raise StoreError(f"{self.path}: published offset {published} is past "
                                 f"the file's end ({self.mapped})")
        while self.parsed < published:
            self.parse_record(published)

    cdef int parse_record(self, uint64_t published) except -1:
        cdef const char* at = self.base + self.parsed
        cdef uint32_t kind, nbytes
        if published - self.parsed < RECORD_HEAD:
            return self.corrupt("a record head cut short")
        kind = u32_at(at)
        nbytes = u32_at(at + 4)
        if nbytes < RECORD_HEAD or nbytes % 8 or nbytes > published - self.parsed:
            return self.corrupt(f"a record of {nbytes} bytes")
        if kind == RECORD_SERIES:
            self.parse_series(at, nbytes)
        elif kind == RECORD_METRIC:
            self.parse_metric(at, nbytes)
        elif kind == RECORD_REMOVE and nbytes >= 16:
            self.forget((<uint64_t*>(at + 8))[0], 0)
        elif kind == RECORD_CLEAR and nbytes >= 16:
            self.forget(0, u32_at(at + 8))
        elif kind == RECORD_NATIVE:
            self.parse_native(at, nbytes)
        elif kind == RECORD_ABSORBED:
            self.absorbed = self.texts(at + RECORD_HEAD, at + nbytes)
        elif kind != RECORD_PAD:
            return self.corrupt(f"a record of type {kind}, {nbytes} bytes")
        self.parsed += nbytes
        return 0

    cdef int forget(self, uint64_t record, uint32_t metric_id) except -1:
        """Mark gone every series of metric `metric_id`, or (`metric_id` 0)
        the series recorded at offset `record`: as the writer's metric did,
        its metric's last series takes its place (so a single worker's
        series read in the order its own scrape would show them)."""
        cdef Py_ssize_t k, last
        if metric_id:
            for k in range(self.nseries):
                if self.metric_ids[k] == metric_id:
                    self.removed[k] = 1
            self.lost_series = True
            return 0
        for k in range(self.nseries - 1, -1, -1):
            if self.offsets[k] == record and not self.removed[k]:
                break
        else:
            return self.corrupt("a REMOVE of no series")
        if self.number_of_offset is not None:
            del self.number_of_offset[self.offsets[k]]
        for last in range(self.nseries - 1, k, -1):
            if self.metric_ids[last] == self.metric_ids[k] and not self.removed[last]:
                self.offsets[k] = self.offsets[last]
                self.label_blobs[k] = self.label_blobs[last]
                self.native_at[k] = self.native_at[last]
                if self.number_of_offset is not None:
                    self.number_of_offset[self.offsets[k]] = k
                k = last
                break
        self.removed[k] = 1
        self.lost_series = True
        return 0

    cdef int parse_metric(self, const char* at, uint32_t nbytes) except -1:
        if nbytes < RECORD_HEAD + 20:
            return self.corrupt("a METRIC record cut short")
        cdef uint32_t metric_id = u32_at(at + 8)
        cdef uint32_t kind = u32_at(at + 12)
        cdef uint32_t mode = u32_at(at + 16)
        cdef uint32_t nbounds = u32_at(at + 20)
        cdef Py_ssize_t b
        cdef double bound
        if not STORED_COUNTER <= kind <= STORED_SUMMARY or mode >= len(GAUGE_MODES):
            return self.corrupt(f"a METRIC record of kind {kind}, mode {mode}")
        if <uint64_t>24 + 8 * <uint64_t>nbounds > nbytes:
            return self.corrupt("a METRIC record's bounds cut short")
        cdef uint32_t nvalues = nbounds
        if kind == STORED_HISTOGRAM and mode == 1:
            nvalues += NATIVE_SETTINGS
        elif kind != STORED_GAUGE and mode != 0:
            return self.corrupt(f"a METRIC record of kind {kind}, mode {mode}")
        if <uint64_t>24 + 8 * <uint64_t>nvalues > nbytes:
            return self.corrupt("a METRIC record's bounds cut short")
        values = []
        for b in range(nvalues):
            memcpy(&bound, at + 24 + 8 * b, 8)
            values.append(bound)
        texts = self.texts(at + 24 + 8 * nvalues, at + nbytes)
        bounds, native = tuple(values[:nbounds]), tuple(values[nbounds:]) or None
        if len(texts) < 4 or len(texts) % 2 or (
                kind == STORED_HISTOGRAM and (nbounds == 0 or bounds[nbounds - 1] != INFINITY)):
            return self.corrupt("a METRIC record's texts or bounds")
        if native is not None and not (SCHEMA_MIN <= native[0] <= SCHEMA_MAX
                                       and native[0] == int(native[0])):
            return self.corrupt(f"a native histogram of schema {native[0]}")
        self.metrics[metric_id] = (kind, mode, bounds, texts, native)
        return 0

    cdef int parse_native(self, const char* at, uint32_t nbytes) except -1:
        cdef Py_ssize_t k
        if not native_record_fits(at, nbytes):
            return self.corrupt("a NATIVE record")
        if self.number_of_offset is None:
            self.number_of_offset = {self.offsets[k]: k for k in range(self.nseries)
                                     if not self.removed[k]}
        k = self.number_of_offset.get((<uint64_t*>(at + 8))[0], -1)
        if k < 0:
            return self.corrupt("a NATIVE record of no series")
        self.native_at[k] = self.parsed
        return 0

    cdef int parse_series(self, const char* at, uint32_t nbytes) except -1:
        if nbytes < RECORD_HEAD + 8:
            return self.corrupt("a SERIES record cut short")
        cdef uint32_t metric_id = u32_at(at + 8)
        cdef uint32_t nwords = u32_at(at + 12)
        cdef const char* blob = at + 16 + 8 * <uint64_t>nwords
        cdef Py_ssize_t length
        described = self.metrics.get(metric_id)
        if described is None:
            return self.corrupt(f"a series of unknown metric {metric_id}")
        if nwords != stored_words(described[0], len(described[2])) or (
                16 + 8 * <uint64_t>nwords > nbytes):
            return self.corrupt(f"a series of {nwords} value words")
        length = texts_length(blob, at + nbytes)
        if length < 0:
            return self.corrupt("a series' label texts")
        if self.nseries >= self.series_capacity:
            self.grow_series()
        self.offsets[self.nseries] = self.parsed
        self.metric_ids[self.nseries] = metric_id
        self.removed[self.nseries] = 0
        self.native_at[self.nseries] = 0
        if self.number_of_offset is not None:
            self.number_of_offset[self.parsed] = self.nseries
        self.label_blobs.append(PyBytes_FromStringAndSize(blob, length))
        self.nseries += 1
        return 0

    cdef int grow_series(self) except -1:
        cdef Py_ssize_t n = self.series_capacity * 2 + 64
        cdef uint64_t* offsets = <uint64_t*>realloc(self.offsets, n * sizeof(uint64_t))
        if offsets == NULL:
            raise MemoryError()
        self.offsets = offsets
        cdef uint32_t* metric_ids = <uint32_t*>realloc(self.metric_ids, n * sizeof(uint32_t))
        if metric_ids == NULL:
            raise MemoryError()
        self.metric_ids = metric_ids
        cdef unsigned char* removed = <unsigned char*>realloc(self.removed, n)
        if removed == NULL:
            raise MemoryError()
        self.removed = removed
        cdef uint64_t* native_at = <uint64_t*>realloc(self.native_at, n * sizeof(uint64_t))
        if native_at == NULL:
            raise MemoryError()
        self.native_at = native_at
        self.series_capacity = n
        return 0

    cdef tuple texts(self, const char* at, const char* end):
        """The texts written at `at` (write_texts), which must end by `end`."""
        cdef Py_ssize_t length = texts_length(at, end)
        if length < 0:
            self.corrupt("texts cut short")
        try:
            return decode_texts(at)
        except UnicodeDecodeError:
            self.corrupt("a text that is not UTF-8")

    cdef int corrupt(self, str what) except -1:
        raise StoreError(f"{self.path}: corrupt store ({what} at offset {self.parsed})")

    def metric(self, uint32_t metric_id):
        """(kind, mode, bounds, texts, native settings or None) of the store's
        metric `metric_id`."""
        return self.metrics[metric_id]

    cdef inline char* native_record(self, Py_ssize_t k) noexcept:
        """Series `k`'s newest NATIVE record, or NULL."""
        return NULL if self.native_at[k] == 0 else self.base + self.native_at[k]

    cdef int add_entry(self, uint64_t words, Py_ssize_t series, Py_ssize_t target,
                       Py_ssize_t number) except -1:
        cdef StoredSeries* grown
        if self.nentries >= self.entries_capacity:
            grown = <StoredSeries*>realloc(
                self.entries, (self.entries_capacity * 2 + 16) * sizeof(StoredSeries))
            if grown == NULL:
                raise MemoryError()
            self.entries = grown
            self.entries_capacity = self.entries_capacity * 2 + 16
        self.entries[self.nentries].words = words
        self.entries[self.nentries].series = series
        self.entries[self.nentries].target = target
        self.entries[self.nentries].number = number
        self.nentries += 1
        return 0


cdef Py_ssize_t texts_length(const char* at, const char* end) noexcept:
    """The bytes of the texts written at `at` (write_texts) if they end by
    `end`, else -1."""
    cdef const char* start = at
    cdef uint32_t count, k
    if end - at < 4:
        return -1
    count = u32_at(at)
    at += 4
    for k in range(count):
        if end - at < 4 or u32_at(at) > <uint64_t>(end - at - 4):
            return -1
        at += 4 + u32_at(at)
    return at - start


cdef tuple decode_texts(const char* at):
    """The texts written at `at`, measured by texts_length first; raises
    UnicodeDecodeError for a text that is not UTF-8."""
    cdef uint32_t count = u32_at(at)
    cdef uint32_t k, n
    cdef list result = []
    at += 4
    for k in range(count):
        n = u32_at(at)
        result.append(PyUnicode_DecodeUTF8(at + 4, n, NULL))
        at += 4 + n
    return tuple(result)


cdef uint32_t stored_words(uint32_t kind, Py_ssize_t nbounds) noexcept:
    if kind == STORED_HISTOGRAM:
        return <uint32_t>nbounds + 1
    if kind == STORED_SUMMARY:
        return 2
    return SCALAR_WORDS


@cython.final
cdef class LabelTexts:
    """Stored label texts (bytes) decoded into label sets, once: a new layout
    (after a worker came or went) finds those of the last one again."""

    cdef dict labels                # of the layout in use
    cdef dict earlier               # of the one before, while a new one is made

    cdef object labels_of(self, bytes blob):
        """The label set `blob` spells, or None if it spells none."""
        labels = self.labels.get(blob)
        if labels is not None:
            return labels
        if self.earlier is not None:
            labels = self.earlier.get(blob)
        if labels is None:
            try:
                labels = decode_texts(PyBytes_AS_STRING(<PyObject*>blob))
            except UnicodeDecodeError:
                return None
            if not names_in_order(labels):
                return None
        self.labels[blob] = labels
        return labels


cdef class MergedMetric:
    """One metric of the aggregate: the metric object the encoders get, and
    how the stores' values of its series combine."""

    cdef Metric metric
    cdef uint32_t kind
    cdef uint32_t mode
    cdef tuple bounds
    cdef tuple native               # a native histogram's settings, or None
    cdef dict numbers               # label key -> merged series number
    cdef double* stamps             # most-recent gauges: when each value was set
    cdef unsigned char* native_seen # native histograms: series a store added into yet

    def __dealloc__(self):
        free(self.stamps)
        free(self.native_seen)

    cdef Py_ssize_t number_of(self, bytes blob, str pid, LabelTexts decoded) except -2:
        """The merged series of a stored one's label texts `blob` (with label
        pid=`pid` added, unless None), made on first sight; -1 if the texts
        are no label set."""
        key = blob if pid is None else (blob, pid)
        number = self.numbers.get(key)
        if number is not None:
            return number
        cdef Metric m = self.metric
        labels = decoded.labels_of(blob)
        if labels is None:
            return -1
        if pid is not None:
            labels = with_label(labels, "pid", pid)
        cdef Py_hash_t h = flat_hash(labels)
        # other texts are another label set, unless a pid label replaced one
        cdef Py_ssize_t i = -1 if pid is None else m.series.find_key(labels, h)
        if i < 0:
            if m.series.count >= m.capacity:
                m.reserve(m.capacity * 2 + 8)
            if m.series.count >= m.created_capacity:
                m.reserve_created(m.capacity)
            if isinstance(m, SummaryCore):
                m.states.append(EMPTY_SUMMARY_STATE)
            i = m.series.add(labels, h)
            m.created[i] = 0.0
        self.numbers[key] = i
        return i

    cdef int zero(self) except -1:
        """Every series to the value it starts adding from."""
        cdef Metric m = self.metric
        cdef Py_ssize_t i, n = m.series.count
        cdef double start = 0.0
        if isinstance(m, ScalarMetric):
            if self.kind == STORED_GAUGE:
                if self.mode // 2 == GAUGE_MIN // 2:
                    start = INFINITY
                elif self.mode // 2 == GAUGE_MAX // 2:
                    start = -INFINITY
            for i in range(n):
                (<ScalarMetric>m).values[i] = start
                (<ScalarMetric>m).is_float[i] = 0
            if self.mode // 2 == GAUGE_MOSTRECENT // 2:
                free(self.stamps)
                self.stamps = <double*>malloc((n or 1) * sizeof(double))
                if self.stamps == NULL:
                    raise MemoryError()
                for i in range(n):
                    self.stamps[i] = -INFINITY
        elif isinstance(m, HistogramCore):
            memset((<HistogramCore>m).counts, 0,
                   n * (<HistogramCore>m).nbounds * sizeof(unsigned long long))
            memset((<HistogramCore>m).sums, 0, n * sizeof(double))
            if (<HistogramCore>m).native is not None:
                free(self.native_seen)
                self.native_seen = <unsigned char*>calloc(n or 1, 1)
                if self.native_seen == NULL:
                    raise MemoryError()
                for i in range(n):
                    (<HistogramCore>m).native.start(&(<HistogramCore>m).native.states[i], NAN)
        else:
            memset((<SummaryCore>m).counts, 0, n * sizeof(unsigned long long))
            memset((<SummaryCore>m).sums, 0, n * sizeof(double))
        return 0

    cdef int add(self, Py_ssize_t i, const uint64_t* words, char* native) except -1:
        """Combine one store's words of series `i` (and its NATIVE record,
        if any) into it."""
        cdef Metric m = self.metric
        cdef double v, was, stamp
        cdef Py_ssize_t b, nb
        if self.kind == STORED_HISTOGRAM:
            nb = (<HistogramCore>m).nbounds
            (<HistogramCore>m).sums[i] += load_double(words)
            for b in range(nb):
                (<HistogramCore>m).counts[i * nb + b] += load_word(words + 1 + b)
            if native != NULL and (<HistogramCore>m).native is not None:
                merge_native(&(<HistogramCore>m).native.states[i], not self.native_seen[i],
                             native)
                self.native_seen[i] = 1
            return 0
        if self.kind == STORED_SUMMARY:
            (<SummaryCore>m).counts[i] += load_word(words)
            (<SummaryCore>m).sums[i] += load_double(words + 1)
            return 0
        v = load_double(words)
        was = (<ScalarMetric>m).values[i]
        if self.kind == STORED_GAUGE and self.mode // 2 != GAUGE_SUM // 2:
            if self.mode // 2 == GAUGE_MIN // 2:
                if not v < was:
                    return 0
            elif self.mode // 2 == GAUGE_MAX // 2:
                if not v > was:
                    return 0
            elif self.mode // 2 == GAUGE_MOSTRECENT // 2:
                stamp = load_double(words + 2)
                if stamp < self.stamps[i]:
                    return 0
                self.stamps[i] = stamp
            (<ScalarMetric>m).values[i] = v        # all: one store per series
            (<ScalarMetric>m).is_float[i] = load_word(words + 1) != 0
            return 0
        (<ScalarMetric>m).values[i] = was + v
        if load_word(words + 1):
            (<ScalarMetric>m).is_float[i] = 1
        return 0


# what a merged summary's series hold as estimators: it has no quantiles to ask them for
cdef QuantileEstimator EMPTY_SUMMARY_STATE = QuantileEstimator(((0.5, 0.05),))


cdef class Aggregation:
    """The merged metrics of a set of stores (see the top of this file)."""

    cdef list readers               # the StoreReaders, in the order they merge
    cdef list lives                 # per reader: its gauges count in live modes
    cdef list targets               # MergedMetric, by first appearance
    cdef dict target_of             # metric name -> index in targets
    cdef dict classes               # stored kind -> the class a merged metric is made of
    cdef readonly list conflicts    # (store path, metric name, why) left out
    cdef LabelTexts decoded         # the stored label texts met, decoded

    def __cinit__(self, dict classes):
        self.readers = []
        self.lives = []
        self.classes = classes
        self.relayout()

    cdef void relayout(self) noexcept:
        self.targets = []
        self.target_of = {}
        self.conflicts = []
        if self.decoded is None:
            self.decoded = LabelTexts.__new__(LabelTexts)
            self.decoded.labels = {}
        self.decoded.earlier = self.decoded.labels    # kept while the new layout is made
        self.decoded.labels = {}

    def merge(self, list readers, list lives):
        """The merged metrics of `readers` (StoreReaders just refreshed, in
        merge order; `lives`: whether each one's gauges count in the live
        modes), values as of now."""
        cdef StoreReader reader
        cdef Py_ssize_t r, k
        cdef dict resolved
        if readers != self.readers or lives != self.lives or any(
                (<StoreReader>reader).lost_series for reader in readers):
            self.relayout()
            self.readers = list(readers)
            self.lives = list(lives)
            for reader in readers:
                reader.nentries = reader.placed = 0
                reader.lost_series = False
        for r in range(len(readers)):
            reader = readers[r]
            resolved = {}
            for k in range(reader.placed, reader.nseries):
                if not reader.removed[k]:
                    self.place(reader, lives[r], k, resolved)
            reader.placed = reader.nseries
        self.decoded.earlier = None
        self.fill()
        return [(<MergedMetric>target).metric for target in self.targets]

    cdef int place(self, StoreReader reader, bint live, Py_ssize_t k,
                   dict resolved) except -1:
        """Say which merged series stored series `k` of `reader` adds into
        (making it); `resolved` caches where each of its metrics goes."""
        cdef uint32_t metric_id = reader.metric_ids[k]
        where = resolved.get(metric_id)
        if where is None:
            where = resolved[metric_id] = self.resolve(reader, live, metric_id)
        index, pid = where
        if index < 0:
            return 0
        cdef MergedMetric target = self.targets[index]
        cdef Py_ssize_t number = target.number_of(reader.label_blobs[k], pid, self.decoded)
        if number < 0:
            self.conflicts.append((reader.path, target.metric.metric_name,
                                   "a series' label texts are not a label set"))
            return 0
        reader.add_entry(reader.offsets[k] + 16, k, index, number)
        return 0

    cdef tuple resolve(self, StoreReader reader, bint live, uint32_t metric_id):
        """(merged metric index or -1, pid label value or None) for the
        series of `reader`'s metric `metric_id`."""
        kind, mode, bounds, texts, native = reader.metric(metric_id)
        if kind == STORED_GAUGE and mode % 2 and not live:
            return (-1, None)         # a live-only gauge of a dead worker
        index = self.target_of.get(texts[0])
        if index is None:
            index = len(self.targets)
            self.targets.append(self.merged_metric(kind, mode, bounds, texts, native))
            self.target_of[texts[0]] = index
        cdef MergedMetric target = self.targets[index]
        if (kind, mode, bounds, native) != (target.kind, target.mode, target.bounds,
                                            target.native):
            self.conflicts.append((reader.path, texts[0], "kind, gauge mode or buckets differ"))
            return (-1, None)
        if kind == STORED_GAUGE and mode // 2 == GAUGE_ALL // 2 and not reader.archived:
            return (index, str(reader.pid))
        return (index, None)

    cdef MergedMetric merged_metric(self, uint32_t kind, uint32_t mode, tuple bounds,
                                    tuple texts, tuple native):
        cdef MergedMetric target = MergedMetric.__new__(MergedMetric)
        cdef Metric m = self.classes[kind].__new__(self.classes[kind])
        m.metric_name = texts[0]
        m.doc_given = m.doc_text = texts[1]
        m.unit_text = texts[2]
        m.openmetrics_kind = texts[3] or None
        m.const_key = texts[4:]
        if kind == STORED_HISTOGRAM:
            (<HistogramCore>m).install_bounds(bounds)
            if native is not None:
                (<HistogramCore>m).native = NativeBuckets(
                    int(native[0]), native[1], int(native[2]), native[3], native[4])
        elif kind == STORED_SUMMARY:
            (<SummaryCore>m).invariant_pairs = ()
            (<SummaryCore>m).phis_sorted = ()
        m.gauge_mode = mode
        target.metric = m
        target.kind = kind
        target.mode = mode
        target.bounds = bounds
        target.native = native
        target.numbers = {}
        return target

    cdef int fill(self) except -1:
        """Add up every store's words into the merged series."""
        cdef StoreReader reader
        cdef StoredSeries* e
        cdef Py_ssize_t k
        for target in self.targets:
            (<MergedMetric>target).zero()
        for reader in self.readers:
            for k in range(reader.nentries):
                e = &reader.entries[k]
                (<MergedMetric>self.targets[e.target]).add(
                    e.number, <const uint64_t*>(reader.base + e.words),
                    reader.native_record(e.series))
        return 0


    def write_into(self, StoreWriter store):
        """Write the merged metrics, values included, into `store` (how dead
        workers' stores are folded into an archive)."""
        cdef MergedMetric target
        cdef Metric m
        cdef uint32_t metric_id, nwords
        cdef uint64_t nbytes
        cdef uint64_t* words
        cdef Py_ssize_t i
        cdef NativeShare share
        for target in self.targets:
            m = target.metric
            metric_id = metric_record(store, m)
            nwords = m.shared_words()
            for i in range(m.series.count):
                words = store.begin_series(metric_id, nwords, m.series.key_at(i), &nbytes)
                m.share_values(i, words)
                if target.stamps != NULL:      # when the value was set, not now
                    store_double(words + 2, target.stamps[i])
                store.commit(nbytes)
                if isinstance(m, HistogramCore) and (<HistogramCore>m).native is not None:
                    memset(&share, 0, sizeof(NativeShare))
                    publish_native(store, store.offset_of(<char*>words - 16),
                                   &(<HistogramCore>m).native.states[i], &share)


cdef bint names_in_order(tuple flat) noexcept:
    """Whether `flat` is name, text pairs with the names strictly ascending,
    as a label set is kept (stored texts are trusted no further)."""
    cdef Py_ssize_t i
    if len(flat) % 2:
        return False
    for i in range(0, len(flat), 2):
        if len(<str>flat[i]) == 0 or (
                i and not (<str>flat[i - 2]) < (<str>flat[i])):
            return False
    return True


cdef tuple with_label(tuple key, str name, str value):
    """`key` with label `name` set to `value`, kept in name order."""
    cdef list flat = []
    cdef Py_ssize_t i
    cdef bint placed = False
    for i in range(0, len(key), 2):
        if not placed and name <= key[i]:
            flat += [name, value]
            placed = True
            if name == key[i]:
                continue
        flat += [key[i], key[i + 1]]
    if not placed:
        flat += [name, value]
    return tuple(flat)
