"""Mappings keyed by label dicts.

:class:`MetricDict` is aioprometheus 23.12's stand-alone dict keyed by label
dicts (kept for code that builds one itself); :class:`SeriesView` is what
``collector.values`` returns here: a live view over the compiled series table,
so reading and writing it reads and writes the metric itself.
"""

import json
import re
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Union

if TYPE_CHECKING:
    from .collectors import Collector

# What a key MetricDict made itself looks like, so that such keys (e.g. from
# iterating a MetricDict) can be used again as they are.
_ENCODED_KEY_RE = re.compile(r"\{.*:.*,?\}")


class MetricDict(MutableMapping):
    """A dict keyed by label dicts: equal dicts are one key, whatever their order.

    Keys are stored (and iterated) in their encoded form: ``EMPTY_KEY`` for
    "no labels" (``None``, ``{}``, ``""``...), else the labels as JSON bytes
    with sorted keys, e.g. ``b'{"a":1,"b":2}'``; such bytes are accepted as
    keys too. Any other key raises ``TypeError``.
    """

    EMPTY_KEY = "__EMPTY__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.store: Dict[Union[str, bytes], Any] = {}
        self.update(dict(*args, **kwargs))

    def __getitem__(self, key: Any) -> Any:
        return self.store[self.__keytransform__(key)]

    def __setitem__(self, key: Any, value: Any) -> None:
        self.store[self.__keytransform__(key)] = value

    def __delitem__(self, key: Any) -> None:
        del self.store[self.__keytransform__(key)]

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        return iter(self.store)

    def __len__(self) -> int:
        return len(self.store)

    def __keytransform__(self, key: Any) -> Union[str, bytes]:
        """The stored form of `key` (see the class docstring)."""
        if not key or key == MetricDict.EMPTY_KEY:
            return MetricDict.EMPTY_KEY
        if isinstance(key, bytes) and _ENCODED_KEY_RE.match(key.decode()):
            return key
        if not isinstance(key, dict):
            raise TypeError("Only accepts dicts as keys")
        return json.dumps(
            {str(name): value for name, value in key.items()},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


class SeriesView(MutableMapping):
    """``collector.values``: mutable mapping of ``labels dict -> value`` over
    one collector's series.

    Keys are label dicts (``None`` and ``{}`` are the label-less series);
    iteration yields fresh dicts. Values are what ``get_value`` returns.
    """

    EMPTY_KEY = MetricDict.EMPTY_KEY

    def __init__(self, collector: "Collector") -> None:
        self._collector = collector

    @staticmethod
    def _labels(key: Any) -> Optional[Dict[str, Any]]:
        if key is None or key == SeriesView.EMPTY_KEY:
            return None
        if not isinstance(key, dict):
            raise TypeError("Only accepts dicts as keys")
        return key

    def __getitem__(self, key: Any) -> Any:
        return self._collector.get_value(self._labels(key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._collector.set_value(self._labels(key), value)

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
