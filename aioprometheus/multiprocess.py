"""Multi-process mode, for pre-fork servers (gunicorn, ``uvicorn --workers``).

Set ``PROMETHEUS_MULTIPROC_DIR`` to an existing, empty directory before the
workers start. Then every Counter, Gauge, Histogram and Summary keeps its
series in a store file of its process in that directory (compiled:
``_kernels/shm_store.pxi``), and every scrape, from any worker or from a
separate exporter process given the same directory, serves the aggregate of
all the stores (``_kernels/aggregate.pxi``): counters, histograms and
summaries' count and sum add up; gauges combine as their
``multiprocess_mode`` says.

A dead worker's store is folded into one archive store, at the next scrape
(its process is gone) or at once by :func:`mark_process_dead` (gunicorn's
``child_exit`` hook), so totals never go backwards and the directory holds
at most one store per live process plus the archive.
"""

import errno
import fcntl
import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Set, Tuple

from . import _core

if TYPE_CHECKING:
    from .collectors import Collector

__all__ = ["ENV_VAR", "GAUGE_MODES", "mark_process_dead", "store_files"]

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
GAUGE_MODES: Tuple[str, ...] = tuple(_core.GAUGE_MODES)
SUFFIX = ".aiop"
ARCHIVE = "archive" + SUFFIX
LOCK = ".aiop.lock"

log = logging.getLogger(__name__)


def directory() -> Optional[str]:
    """The multi-process directory, or None when the mode is off."""
    return os.environ.get(ENV_VAR) or None


def store_files(path: Optional[str] = None) -> List[str]:
    """The store files in `path` (the multi-process directory by default)."""
    path = _checked_directory(path)
    return sorted(name for name in os.listdir(path) if name.endswith(SUFFIX))


def _checked_directory(path: Optional[str]) -> str:
    path = path or directory()
    if not path:
        raise ValueError(f"multi-process mode needs {ENV_VAR} (or a path)")
    if not os.path.isdir(path):
        raise ValueError(f"{ENV_VAR} is {path!r}, which is not a directory")
    return path


# -- the writing side: this process's store ------------------------------------

_shared: "weakref.WeakSet[Collector]" = weakref.WeakSet()
_store_lock = threading.Lock()
_store: Optional[Tuple[int, _core.StoreWriter]] = None  # (pid, its store)


def share(metric: "Collector", mode: str) -> None:
    """Keep `metric`'s series in this process's store (mode is on)."""
    _checked_directory(None)
    metric._share(mode)
    _shared.add(metric)


def _process_store() -> _core.StoreWriter:
    """This process's store, made on first use (and anew in a forked child)
    in the multi-process directory of that moment."""
    global _store
    pid = os.getpid()
    with _store_lock:
        if _store is None or _store[0] != pid:
            token = _start_token(pid)
            path = os.path.join(
                _checked_directory(None), f"worker-{pid}-{token}{SUFFIX}"
            )
            _store = (pid, _core.StoreWriter(path, pid, token))
        return _store[1]


def _after_fork_in_child() -> None:
    """A forked child writes a store of its own: its metrics start empty (what
    the parent counted stays in the parent's store)."""
    global _store, _store_lock
    _store = None
    _store_lock = threading.Lock()
    _aggregators.clear()  # their locks may be held by a thread the fork left behind
    for metric in list(_shared):
        metric._forget_store()


_core.set_store_source(_process_store)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _start_token(pid: int) -> int:
    """When process `pid` started (clock ticks since boot), telling it from a
    later process given the same pid; 0 where /proc cannot say."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return int(stat[stat.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def _alive(pid: int, token: int) -> bool:
    if token:
        return _start_token(pid) == token
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


# -- the reading side: the aggregate of all stores -------------------------------


def _merged_classes() -> Dict[int, type]:
    from .collectors import Counter, Gauge, Histogram, Summary

    return {1: Counter, 2: Gauge, 3: Histogram, 4: Summary}


LISTING_TRIES = 10  # listings a scrape makes while folds overtake it


def _identity(path: str) -> Optional[Tuple[int, int]]:
    """(inode, device) of the file at `path`, or None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_dev)


class _Aggregator:
    """The readers of one directory's stores and their merged metrics."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.aggregation = _core.Aggregation(_merged_classes())
        self.readers: Dict[str, _core.StoreReader] = {}
        self.reported: Set[Tuple[str, str]] = set()

    def merged(self) -> List["Collector"]:
        with self.lock:
            # A fold replaces the archive, then removes the stores it absorbed:
            # a listing that a fold overtook may hold the old archive and miss
            # a store the new one absorbed, so it is made again until the
            # archive read is the archive there.
            for _ in range(LISTING_TRIES):
                archive, readers, lives, dead = self._open_stores()
                opened = archive.identity if archive is not None else None
                if _identity(os.path.join(self.path, ARCHIVE)) == opened:
                    break
            merged = self.aggregation.merge(readers, lives)
            for path, name, why in self.aggregation.conflicts:
                self._report(path, f"metric {name!r} left out: {why}")
        if dead:
            _fold(self.path, dead, wait=False)
        return merged

    def _open_stores(
        self,
    ) -> Tuple[
        Optional[_core.StoreReader], List[_core.StoreReader], List[bool], List[str]
    ]:
        """The archive, the readers to merge (refreshed) and whether each is
        live, and the dead workers' stores, as the directory holds them now."""
        names = store_files(self.path)  # listed before the archive is read
        for gone in set(self.readers) - set(names):  # its mapping and fd too
            del self.readers[gone]
        readers, lives, dead = [], [], []
        archive = self._reader(ARCHIVE) if ARCHIVE in names else None
        if archive is not None and not self._refresh(archive):
            archive = None
        absorbed = set(archive.absorbed) if archive is not None else set()
        if archive is not None:
            readers.append(archive)
            lives.append(False)
        for name in names:
            if name == ARCHIVE or name in absorbed:
                continue
            reader = self._reader(name)
            if reader is None or not self._refresh(reader):
                continue
            live = _alive(reader.pid, reader.token)
            if not live:
                dead.append(name)
            readers.append(reader)
            lives.append(live)
        return archive, readers, lives, dead

    def _reader(self, name: str) -> Optional[_core.StoreReader]:
        """The reader of store `name`: the cached one, unless the file was
        replaced (the archive is, at each fold) or is another version's."""
        path = os.path.join(self.path, name)
        identity = _identity(path)
        cached = self.readers.get(name)
        if identity is None:
            self.readers.pop(name, None)
            return None
        if cached is not None and cached.identity == identity:
            return cached
        try:
            reader = _core.StoreReader(path)
        except FileNotFoundError:
            return None
        except (_core.StoreError, OSError) as exc:
            self._report(path, str(exc))
            return None
        self.readers[name] = reader
        return reader

    def _refresh(self, reader: _core.StoreReader) -> bool:
        try:
            reader.refresh()
        except (_core.StoreError, OSError) as exc:
            self._report(reader.path, str(exc))
            return False
        return True

    def _report(self, path: str, message: str) -> None:
        """Say once per file and problem that a store was left out."""
        if (path, message) not in self.reported:
            self.reported.add((path, message))
            log.error("aioprometheus multi-process store skipped: %s", message)


_aggregators: Dict[str, _Aggregator] = {}


def merged_collectors(local: Iterable["Collector"]) -> List["Collector"]:
    """What a scrape exposes in multi-process mode: `local` (a registry's
    collectors) with every shared metric replaced by the aggregate of all the
    stores, plus the stores' metrics this process does not define, by name."""
    path = _checked_directory(None)
    aggregator = _aggregators.get(path)
    if aggregator is None:
        aggregator = _aggregators.setdefault(path, _Aggregator(path))
    merged = {metric.name: metric for metric in aggregator.merged()}
    exposed = []
    for collector in local:
        if collector.multiprocess_mode is not None:
            exposed.append(merged.pop(collector.name, collector))
        else:  # a local-only collector keeps its name
            merged.pop(collector.name, None)
            exposed.append(collector)
    exposed.extend(merged.values())
    return sorted(exposed, key=lambda collector: collector.name)


# -- folding dead workers' stores into the archive ------------------------------


def mark_process_dead(pid: int, path: Optional[str] = None) -> None:
    """Fold the stores of process `pid`, which has exited, into the archive.

    For gunicorn's ``child_exit(server, worker)`` hook:
    ``mark_process_dead(worker.pid)``. (Without it, a dead worker's store is
    folded at the next scrape that finds its process gone.)
    """
    path = _checked_directory(path)
    prefix = f"worker-{pid}-"
    dead = [name for name in store_files(path) if name.startswith(prefix)]
    if dead:
        _fold(path, dead, wait=True)


def _fold(path: str, dead: List[str], wait: bool) -> None:
    """Fold the stores `dead` into the archive, under the directory's lock
    (if another process holds it and not `wait`, leave it to a later scrape).

    The new archive is written aside, names the stores it absorbed, and
    replaces the old one in one rename; the absorbed stores are removed only
    then. A reader skips a store its archive absorbed, so a fold interrupted
    anywhere counts nothing twice and loses nothing.
    """
    with open(os.path.join(path, LOCK), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                return
            raise
        names = set(store_files(path))
        archive_path = os.path.join(path, ARCHIVE)
        archive = _core.StoreReader(archive_path) if ARCHIVE in names else None
        if archive is not None:
            archive.refresh()
        absorbed = set(archive.absorbed) if archive is not None else set()
        todo = sorted(name for name in dead if name in names and name not in absorbed)
        readers = [archive] if archive is not None else []
        folded = []
        for name in todo:
            try:
                readers.append(_core.StoreReader(os.path.join(path, name)))
                folded.append(name)
            except _core.StoreError as exc:
                log.error("aioprometheus multi-process store set aside: %s", exc)
                os.replace(os.path.join(path, name), os.path.join(path, name + ".bad"))
        for reader in readers:
            reader.refresh()
        if folded:
            aggregation = _core.Aggregation(_merged_classes())
            aggregation.merge(readers, [False] * len(readers))
            fresh_path = archive_path + ".new"
            if os.path.exists(fresh_path):  # left by a fold that died
                os.remove(fresh_path)
            fresh = _core.StoreWriter(fresh_path, 0, 0, True)
            aggregation.write_into(fresh)
            fresh.add_absorbed(sorted((absorbed & names) | set(folded)))
            fresh.close()
            os.replace(fresh_path, archive_path)
        for name in sorted((absorbed & names) | set(folded)):
            try:
                os.remove(os.path.join(path, name))
            except FileNotFoundError:
                pass
