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
from cpython.object cimport PyObject, PyTypeObject
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
include "_kernels/route_table.pxi"
include "_kernels/exchange.pxi"
include "_kernels/snapshot.pxi"
include "_kernels/aggregate.pxi"
include "_kernels/text.pxi"
include "_kernels/openmetrics.pxi"
include "_kernels/protobuf.pxi"


# help()/pydoc list every name in a class's __dict__, and Cython leaves a
# ``__pyx_vtable__`` capsule in the dict of each class with C methods, for
# other extension modules that cimport the class (none does: this is the one
# extension). Its only reader, __Pyx_MergeVtables, runs while the types are
# readied above; instances carry their vtable pointer from tp_new. So the
# capsules are dropped here, as Cython drops its own __reduce_cython__.
cdef extern from "Python.h":
    void PyType_Modified(PyTypeObject* type)


cdef void _drop_vtable_capsules(dict names) except *:
    cdef PyTypeObject* cls
    for value in list(names.values()):
        if isinstance(value, type) and "__pyx_vtable__" in value.__dict__:
            cls = <PyTypeObject*>value
            del (<dict>cls.tp_dict)["__pyx_vtable__"]
            PyType_Modified(cls)


_drop_vtable_capsules(globals())
