# cython: language_level=3, autotestdict=False
"""The compiled core of aioprometheus.

One extension module built from focused kernels, each in its own file:
series table, metric storage per kind, quantile estimation and the two
exposition encoders. The pure-Python layer (collectors.py, formats/) wraps
these; hot methods such as ``Counter.inc`` are these classes' own methods.
"""

cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.mem cimport PyMem_Free
from cpython.object cimport PyObject
from libc.math cimport INFINITY, NAN, fabs, floor, isinf, isnan, llround, nearbyint, signbit
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, qsort, realloc
from libc.string cimport memcmp, memcpy, memmove, memset, strlen
from posix.unistd cimport usleep

include "_kernels/writer.pxi"
include "_kernels/shm_store.pxi"
include "_kernels/blocks.pxi"
include "_kernels/series.pxi"
include "_kernels/metric.pxi"
include "_kernels/exemplar.pxi"
include "_kernels/values.pxi"
include "_kernels/native.pxi"
include "_kernels/native_store.pxi"
include "_kernels/buckets.pxi"
include "_kernels/quantiles.pxi"
include "_kernels/window.pxi"
include "_kernels/summary.pxi"
include "_kernels/bound.pxi"
include "_kernels/exchange.pxi"
include "_kernels/snapshot.pxi"
include "_kernels/aggregate.pxi"
include "_kernels/text.pxi"
include "_kernels/openmetrics.pxi"
include "_kernels/protobuf.pxi"
