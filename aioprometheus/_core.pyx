# cython: language_level=3
"""The compiled core of aioprometheus.

One extension module built from focused kernels, each in its own file:
series table, metric storage per kind, quantile estimation and the two
exposition encoders. The pure-Python layer (collectors.py, formats/) wraps
these; hot methods such as ``Counter.inc`` are these classes' own methods.
"""

cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.mem cimport PyMem_Free
from cpython.object cimport Py_EQ, PyObject
from libc.math cimport INFINITY, fabs, floor, isinf, isnan, nearbyint
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset, strlen

include "_core/writer.pxi"
include "_core/series.pxi"
include "_core/metric.pxi"
include "_core/values.pxi"
include "_core/buckets.pxi"
include "_core/quantiles.pxi"
include "_core/summary.pxi"
include "_core/text.pxi"
include "_core/protobuf.pxi"
