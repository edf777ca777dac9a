"""Type aliases under the names aioprometheus 23.12 published them.

Code written for 23.12 imports these (``from aioprometheus.mypy_types import
LabelsType``); the library's own modules use them too.
"""

from typing import Any, Dict, Tuple, Union

from ._core import QuantileEstimator
from .histogram import Histogram

# Label values may be any object: each is exposed as its str().
LabelsType = Dict[str, Any]
NumericValueType = Union[int, float, Histogram, QuantileEstimator]
ValueType = Union[str, NumericValueType]

SummaryDictKeyType = Union[float, str]  # a quantile, "count" or "sum"
SummaryDictType = Dict[SummaryDictKeyType, NumericValueType]

HistogramDictKeyType = Union[float, str]  # an upper bound, "count" or "sum"
HistogramDictType = Dict[HistogramDictKeyType, Union[int, float]]

MetricValueType = Union[NumericValueType, SummaryDictType, HistogramDictType]
MetricTupleType = Tuple[LabelsType, MetricValueType]

__all__ = [
    "HistogramDictKeyType",
    "HistogramDictType",
    "LabelsType",
    "MetricTupleType",
    "MetricValueType",
    "NumericValueType",
    "SummaryDictKeyType",
    "SummaryDictType",
    "ValueType",
]
