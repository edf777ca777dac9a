"""Message classes for Prometheus' ``io.prometheus.client`` schema.

This module is the Python side of ``aioprometheus/metrics.proto``. It is not
the output of ``protoc``: protoc-generated modules embed a runtime version gate
(protobuf >= 5.26) or rely on internal builder helpers whose shape changes
between major releases. Instead the ``FileDescriptorProto`` is assembled here
from the table below with ``descriptor_pb2``, added to a private
``DescriptorPool`` and turned into classes with the public message factory
API. That works unchanged from protobuf 4.21 up to the newest releases.

A private pool (rather than ``descriptor_pool.Default()``) is used so that
importing this module can never collide with another package that registered
its own copy of the ``io.prometheus.client`` symbols in the default pool (for
example ``prometheus_metrics_proto``, which older aioprometheus releases used).

Keeping in sync: when ``metrics.proto`` changes, edit ``_MESSAGES``/``_ENUMS``
below the same way; ``tests/unit/test_metrics_proto.py`` parses the .proto
file and fails if the two disagree on any message, field, number, label or
type.
"""

from typing import Any, Dict, List, Tuple

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,
)
from google.protobuf.internal import enum_type_wrapper

__all__ = [
    "DESCRIPTOR",
    "POOL",
    "LabelPair",
    "MetricType",
    "COUNTER",
    "GAUGE",
    "SUMMARY",
    "UNTYPED",
    "HISTOGRAM",
    "GAUGE_HISTOGRAM",
    "Gauge",
    "Counter",
    "Quantile",
    "Summary",
    "Untyped",
    "Histogram",
    "Bucket",
    "BucketSpan",
    "Exemplar",
    "Metric",
    "MetricFamily",
]

PACKAGE = "io.prometheus.client"
FILE_NAME = "io/prometheus/client/metrics.proto"
GO_PACKAGE = "github.com/prometheus/client_model/go;io_prometheus_client"

_FDP = descriptor_pb2.FieldDescriptorProto
_OPT = _FDP.LABEL_OPTIONAL
_REP = _FDP.LABEL_REPEATED

# scalar type name (as written in the .proto) -> FieldDescriptorProto type
SCALAR_TYPES: Dict[str, int] = {
    "double": _FDP.TYPE_DOUBLE,
    "float": _FDP.TYPE_FLOAT,
    "int64": _FDP.TYPE_INT64,
    "uint64": _FDP.TYPE_UINT64,
    "int32": _FDP.TYPE_INT32,
    "uint32": _FDP.TYPE_UINT32,
    "sint32": _FDP.TYPE_SINT32,
    "sint64": _FDP.TYPE_SINT64,
    "bool": _FDP.TYPE_BOOL,
    "string": _FDP.TYPE_STRING,
    "bytes": _FDP.TYPE_BYTES,
}

_TIMESTAMP = "google.protobuf.Timestamp"

# enum name -> [(value name, number)]
_ENUMS: List[Tuple[str, List[Tuple[str, int]]]] = [
    (
        "MetricType",
        [
            ("COUNTER", 0),
            ("GAUGE", 1),
            ("SUMMARY", 2),
            ("UNTYPED", 3),
            ("HISTOGRAM", 4),
            ("GAUGE_HISTOGRAM", 5),
        ],
    ),
]

# message name -> [(label, type, field name, number)], in .proto order.
# type is a scalar name, a message/enum of this package, or a qualified name.
_MESSAGES: List[Tuple[str, List[Tuple[str, str, str, int]]]] = [
    (
        "LabelPair",
        [("optional", "string", "name", 1), ("optional", "string", "value", 2)],
    ),
    ("Gauge", [("optional", "double", "value", 1)]),
    (
        "Counter",
        [
            ("optional", "double", "value", 1),
            ("optional", "Exemplar", "exemplar", 2),
            ("optional", _TIMESTAMP, "created_timestamp", 3),
        ],
    ),
    (
        "Quantile",
        [("optional", "double", "quantile", 1), ("optional", "double", "value", 2)],
    ),
    (
        "Summary",
        [
            ("optional", "uint64", "sample_count", 1),
            ("optional", "double", "sample_sum", 2),
            ("repeated", "Quantile", "quantile", 3),
            ("optional", _TIMESTAMP, "created_timestamp", 4),
        ],
    ),
    ("Untyped", [("optional", "double", "value", 1)]),
    (
        "Histogram",
        [
            ("optional", "uint64", "sample_count", 1),
            ("optional", "double", "sample_count_float", 4),
            ("optional", "double", "sample_sum", 2),
            ("repeated", "Bucket", "bucket", 3),
            ("optional", _TIMESTAMP, "created_timestamp", 15),
            ("optional", "sint32", "schema", 5),
            ("optional", "double", "zero_threshold", 6),
            ("optional", "uint64", "zero_count", 7),
            ("optional", "double", "zero_count_float", 8),
            ("repeated", "BucketSpan", "negative_span", 9),
            ("repeated", "sint64", "negative_delta", 10),
            ("repeated", "double", "negative_count", 11),
            ("repeated", "BucketSpan", "positive_span", 12),
            ("repeated", "sint64", "positive_delta", 13),
            ("repeated", "double", "positive_count", 14),
            ("repeated", "Exemplar", "exemplars", 16),
        ],
    ),
    (
        "Bucket",
        [
            ("optional", "uint64", "cumulative_count", 1),
            ("optional", "double", "cumulative_count_float", 4),
            ("optional", "double", "upper_bound", 2),
            ("optional", "Exemplar", "exemplar", 3),
        ],
    ),
    (
        "BucketSpan",
        [("optional", "sint32", "offset", 1), ("optional", "uint32", "length", 2)],
    ),
    (
        "Exemplar",
        [
            ("repeated", "LabelPair", "label", 1),
            ("optional", "double", "value", 2),
            ("optional", _TIMESTAMP, "timestamp", 3),
        ],
    ),
    (
        "Metric",
        [
            ("repeated", "LabelPair", "label", 1),
            ("optional", "Gauge", "gauge", 2),
            ("optional", "Counter", "counter", 3),
            ("optional", "Summary", "summary", 4),
            ("optional", "Untyped", "untyped", 5),
            ("optional", "Histogram", "histogram", 7),
            ("optional", "int64", "timestamp_ms", 6),
        ],
    ),
    (
        "MetricFamily",
        [
            ("optional", "string", "name", 1),
            ("optional", "string", "help", 2),
            ("optional", "MetricType", "type", 3),
            ("repeated", "Metric", "metric", 4),
            ("optional", "string", "unit", 5),
        ],
    ),
]


def schema() -> Tuple[List[Tuple[str, List[Tuple[str, int]]]], List[Any]]:
    """The (enums, messages) tables this module was built from (for tests)."""
    return _ENUMS, _MESSAGES


def _file_descriptor_proto() -> Any:
    enum_names = {name for name, _ in _ENUMS}
    message_names = {name for name, _ in _MESSAGES}
    fdp = descriptor_pb2.FileDescriptorProto()
    fdp.name = FILE_NAME
    fdp.package = PACKAGE
    fdp.syntax = "proto2"
    fdp.dependency.append(timestamp_pb2.DESCRIPTOR.name)
    fdp.options.java_package = PACKAGE
    fdp.options.go_package = GO_PACKAGE
    for enum_name, values in _ENUMS:
        enum = fdp.enum_type.add()
        enum.name = enum_name
        for value_name, number in values:
            value = enum.value.add()
            value.name = value_name
            value.number = number
    for message_name, fields in _MESSAGES:
        message = fdp.message_type.add()
        message.name = message_name
        for label, type_name, field_name, number in fields:
            field = message.field.add()
            field.name = field_name
            field.number = number
            field.label = _REP if label == "repeated" else _OPT
            if type_name in SCALAR_TYPES:
                field.type = SCALAR_TYPES[type_name]  # type: ignore[assignment]
            elif type_name in enum_names:
                field.type = _FDP.TYPE_ENUM
                field.type_name = f".{PACKAGE}.{type_name}"
            elif type_name in message_names:
                field.type = _FDP.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.{type_name}"
            else:
                field.type = _FDP.TYPE_MESSAGE
                field.type_name = f".{type_name}"
    return fdp


def message_class(descriptor: Any) -> Any:
    """The message class of `descriptor`, on any protobuf >= 4.21."""
    get_message_class = getattr(message_factory, "GetMessageClass", None)
    if get_message_class is not None:  # protobuf >= 4.22
        return get_message_class(descriptor)
    return message_factory.MessageFactory(POOL).GetPrototype(descriptor)


def _build() -> Any:
    timestamp_fdp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp_fdp)
    POOL.AddSerializedFile(timestamp_fdp.SerializeToString())
    POOL.AddSerializedFile(_file_descriptor_proto().SerializeToString())
    return POOL.FindFileByName(FILE_NAME)


POOL = descriptor_pool.DescriptorPool()
DESCRIPTOR = _build()

MetricType = enum_type_wrapper.EnumTypeWrapper(
    DESCRIPTOR.enum_types_by_name["MetricType"]
)
COUNTER = 0
GAUGE = 1
SUMMARY = 2
UNTYPED = 3
HISTOGRAM = 4
GAUGE_HISTOGRAM = 5

_by_name = DESCRIPTOR.message_types_by_name
LabelPair = message_class(_by_name["LabelPair"])
Gauge = message_class(_by_name["Gauge"])
Counter = message_class(_by_name["Counter"])
Quantile = message_class(_by_name["Quantile"])
Summary = message_class(_by_name["Summary"])
Untyped = message_class(_by_name["Untyped"])
Histogram = message_class(_by_name["Histogram"])
Bucket = message_class(_by_name["Bucket"])
BucketSpan = message_class(_by_name["BucketSpan"])
Exemplar = message_class(_by_name["Exemplar"])
Metric = message_class(_by_name["Metric"])
MetricFamily = message_class(_by_name["MetricFamily"])
del _by_name
