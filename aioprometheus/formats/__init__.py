"""Exposition formatters: text (0.0.4) and binary (protobuf, delimited)."""

from . import base, binary, text

__all__ = ["base", "binary", "text"]
