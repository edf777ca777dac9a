"""Exposition formatters: text 0.0.4, OpenMetrics 1.0 and protobuf (delimited)."""

from . import base, binary, openmetrics, text

__all__ = ["base", "binary", "openmetrics", "text"]
