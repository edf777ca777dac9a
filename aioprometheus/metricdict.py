"""``collector.values``: a mapping view keyed by label dicts.

aioprometheus exposed a metric's series as a ``MetricDict``; here it is a
view over the compiled series table, so reading and writing it reads and
writes the metric itself.
"""

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional

if TYPE_CHECKING:
    from .collectors import Collector


class MetricDict(MutableMapping):
    """Mutable mapping of ``labels dict -> value`` over one collector's series.

    Keys are label dicts (``None`` and ``{}`` are the label-less series);
    iteration yields fresh dicts.
    """

    EMPTY_KEY = "__EMPTY__"

    def __init__(self, collector: "Collector") -> None:
        self._collector = collector

    @staticmethod
    def _labels(key: Any) -> Optional[Dict[str, Any]]:
        if key is None or key == MetricDict.EMPTY_KEY:
            return None
        if not isinstance(key, dict):
            raise TypeError("Only accepts dicts as keys")
        return key

    def __getitem__(self, key: Any) -> Any:
        return self._collector.get(self._labels(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._collector.set(self._labels(key), value)

    def __delitem__(self, key: Any) -> None:
        self._collector._remove(self._labels(key))

    def __iter__(self) -> Iterator[Dict[str, Any]]:  # type: ignore[override]
        return iter(self._collector._label_sets())

    def __len__(self) -> int:
        return int(self._collector._series_count())

    def __contains__(self, key: object) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def clear(self) -> None:
        self._collector._clear()
