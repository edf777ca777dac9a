"""What the ASGI tests compare: a collector's series as hashable label keys."""

from typing import Any, Dict, Tuple

from aioprometheus.collectors import Registry

LabelKey = Tuple[Tuple[str, Any], ...]


def series_values(registry: Registry, name: str) -> Dict[LabelKey, Any]:
    """{label_key(...): value} of the collector `name` ({} if not registered)."""
    try:
        collector = registry.get(name)
    except KeyError:
        return {}
    return {
        tuple(sorted(labels.items())): value for labels, value in collector.get_all()
    }


def label_key(**labels: Any) -> LabelKey:
    return tuple(sorted(labels.items()))
