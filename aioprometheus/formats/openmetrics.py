"""OpenMetrics 1.0 text; the encoding itself is compiled (_core.encode_openmetrics).

Prometheus asks for this format first by default. Its sample lines are
those of text 0.0.4, so Prometheus stores the same series whichever it gets;
the families around them follow OpenMetrics (``# UNIT``, info and stateset
types, ``# EOF``). See ``aioprometheus/_kernels/openmetrics.pxi``.
"""

from typing import TYPE_CHECKING, Any, Dict, List

from .. import _core
from .base import Emit, RunFormatter
from .text import python_block

if TYPE_CHECKING:
    from ..collectors import Collector, Registry

OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
EOF_LINE = b"# EOF\n"


class OpenMetricsFormatter(RunFormatter):
    """Encodes a registry in OpenMetrics 1.0 text, collectors sorted by name."""

    trailer = EOF_LINE

    def __init__(self) -> None:
        self._created = False  # the registry's created_samples

    def get_headers(self) -> Dict[str, str]:
        return {"Content-Type": OPENMETRICS_CONTENT_TYPE}

    def _configure(self, registry: "Registry") -> None:
        self._created = bool(getattr(registry, "created_samples", False))

    def _timestamp_ms(self) -> None:
        return None  # OpenMetrics samples carry no timestamp here

    def _compiled(self, metrics: List[Any], timestamp_ms: None, emit: Emit) -> None:
        _core.encode_openmetrics(metrics, self._created, emit)

    def _python_block(self, collector: "Collector", timestamp_ms: None) -> bytes:
        return python_block(
            collector, _core.openmetrics_header(collector), _core.encode_openmetrics
        )
