"""metrics_pb2 (built at import time) agrees with metrics.proto and works."""

import math
import os
import re
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from aioprometheus import metrics_pb2

PROTO = Path(metrics_pb2.__file__).with_name("metrics.proto")

FDP = descriptor_pb2.FieldDescriptorProto
LABELS = {"optional": FDP.LABEL_OPTIONAL, "repeated": FDP.LABEL_REPEATED}
SCALARS = {
    "double": FDP.TYPE_DOUBLE,
    "uint64": FDP.TYPE_UINT64,
    "int64": FDP.TYPE_INT64,
    "sint32": FDP.TYPE_SINT32,
    "sint64": FDP.TYPE_SINT64,
    "uint32": FDP.TYPE_UINT32,
    "string": FDP.TYPE_STRING,
}


def parse_proto(text):
    """Tiny reader for the flat proto2 file: messages, enums, fields."""
    text = re.sub(r"//[^\n]*", "", text)
    messages, enums = {}, {}
    for kind, name, body in re.findall(
        r"\b(message|enum)\s+(\w+)\s*\{([^{}]*)\}", text
    ):
        if kind == "message":
            messages[name] = re.findall(
                r"\b(optional|repeated|required)\s+([\w.]+)\s+(\w+)\s*=\s*(\d+)", body
            )
        else:
            enums[name] = [
                (n, int(v)) for n, v in re.findall(r"(\w+)\s*=\s*(\d+)", body)
            ]
    header = {
        "syntax": re.search(r'syntax\s*=\s*"(\w+)"', text).group(1),
        "package": re.search(r"package\s+([\w.]+)\s*;", text).group(1),
    }
    return header, messages, enums


def test_descriptor_matches_proto_file():
    header, messages, enums = parse_proto(PROTO.read_text())
    assert header == {"syntax": "proto2", "package": "io.prometheus.client"}
    # compare through a FileDescriptorProto: the same API on every runtime
    file = descriptor_pb2.FileDescriptorProto()
    metrics_pb2.DESCRIPTOR.CopyToProto(file)
    assert file.package == header["package"]
    assert file.syntax in ("proto2", "")  # proto2 is the default
    assert list(file.dependency) == ["google/protobuf/timestamp.proto"]
    assert [m.name for m in file.message_type] == list(messages)
    assert [e.name for e in file.enum_type] == list(enums)
    for enum in file.enum_type:
        assert [(v.name, v.number) for v in enum.value] == enums[enum.name]
    for message in file.message_type:
        fields = messages[message.name]
        assert [f.name for f in message.field] == [f[2] for f in fields]
        for field, (label, type_name, field_name, number) in zip(message.field, fields):
            where = (message.name, field_name)
            assert field.number == int(number), where
            assert field.label == LABELS[label], where
            if type_name in SCALARS:
                assert field.type == SCALARS[type_name], where
            elif type_name in enums:
                assert field.type == FDP.TYPE_ENUM, where
                assert field.type_name == f".io.prometheus.client.{type_name}", where
            else:
                full = (
                    type_name
                    if "." in type_name
                    else f"io.prometheus.client.{type_name}"
                )
                assert field.type == FDP.TYPE_MESSAGE, where
                assert field.type_name == "." + full, where


def test_current_client_model_fields_present():
    h = metrics_pb2.Histogram.DESCRIPTOR.fields_by_name
    for field in (
        "sample_count_float",
        "created_timestamp",
        "schema",
        "zero_threshold",
        "zero_count",
        "zero_count_float",
        "negative_span",
        "negative_delta",
        "negative_count",
        "positive_span",
        "positive_delta",
        "positive_count",
        "exemplars",
    ):
        assert field in h
    assert "created_timestamp" in metrics_pb2.Counter.DESCRIPTOR.fields_by_name
    assert "created_timestamp" in metrics_pb2.Summary.DESCRIPTOR.fields_by_name
    assert "unit" in metrics_pb2.MetricFamily.DESCRIPTOR.fields_by_name
    assert (
        metrics_pb2.MetricType.Value("GAUGE_HISTOGRAM")
        == metrics_pb2.GAUGE_HISTOGRAM
        == 5
    )


def test_round_trip_all_kinds():
    mf = metrics_pb2.MetricFamily(
        name="h", help="hélp", type=metrics_pb2.HISTOGRAM, unit="s"
    )
    m = mf.metric.add()
    m.label.add(name="path", value="/ü")
    m.timestamp_ms = -5
    h = m.histogram
    h.sample_count = 2**64 - 1
    h.sample_sum = -math.inf
    h.bucket.add(cumulative_count=1, upper_bound=0.5).exemplar.value = 0.25
    h.created_timestamp.seconds = 1700000000
    h.schema = -4
    h.zero_threshold = 2.0**-128
    h.positive_span.add(offset=0, length=0)
    h.negative_span.add(offset=-3, length=2)
    h.negative_delta.extend([5, -7])
    h.exemplars.add(value=1.0).timestamp.nanos = 7
    mf.metric.add().summary.quantile.add(quantile=0.5, value=math.nan)
    mf.metric.add().counter.value = 0.0
    data = mf.SerializeToString()
    back = metrics_pb2.MetricFamily.FromString(data)
    assert back.SerializeToString() == data
    assert back.metric[0].histogram.sample_count == 2**64 - 1
    assert list(back.metric[0].histogram.negative_delta) == [5, -7]
    assert back.metric[0].histogram.created_timestamp.seconds == 1700000000
    assert math.isnan(back.metric[1].summary.quantile[0].value)
    assert back.metric[2].counter.HasField("value")


def _run(code, **env):
    full_env = dict(os.environ, **env)
    root = str(Path(metrics_pb2.__file__).parents[1])
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_loads_with_pure_python_backend():
    code = (
        "import importlib.util as u\n"
        f"s = u.spec_from_file_location('m', {str(Path(metrics_pb2.__file__))!r})\n"
        "m = u.module_from_spec(s); s.loader.exec_module(m)\n"
        "from google.protobuf.internal import api_implementation as a\n"
        "f = m.MetricFamily(name='x', type=m.COUNTER)\n"
        "f.metric.add().counter.value = 1\n"
        "print(a.Type(), f.SerializeToString().hex())\n"
    )
    done = _run(code, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
    assert done.returncode == 0, done.stderr
    kind, hexdata = done.stdout.split()
    assert kind == "python"
    ref = metrics_pb2.MetricFamily(name="x", type=metrics_pb2.COUNTER)
    ref.metric.add().counter.value = 1
    assert bytes.fromhex(hexdata) == ref.SerializeToString()


def test_private_pool_coexists_with_default_pool_copy():
    # Another package registering io.prometheus.client symbols in the default
    # pool (as prometheus_metrics_proto does) must not break our import.
    code = (
        "from google.protobuf import descriptor_pb2, descriptor_pool\n"
        "fdp = descriptor_pb2.FileDescriptorProto(name='other/metrics.proto',"
        " package='io.prometheus.client', syntax='proto2')\n"
        "m = fdp.message_type.add(name='LabelPair')\n"
        "m.field.add(name='name', number=1, type=9, label=1)\n"
        "descriptor_pool.Default().AddSerializedFile(fdp.SerializeToString())\n"
        "import importlib.util as u\n"
        f"s = u.spec_from_file_location('m', {str(Path(metrics_pb2.__file__))!r})\n"
        "mod = u.module_from_spec(s); s.loader.exec_module(mod)\n"
        "print(mod.LabelPair(name='a', value='b').SerializeToString().hex())\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0a0161120162"
