"""Build the compiled core; everything else is declared in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "aioprometheus._core",
        ["aioprometheus/_core.pyx"],
        extra_compile_args=["-O2"],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "cdivision": True,
            "embedsignature": True,
            "binding": False,
            # no generated __reduce_cython__/__setstate_cython__ (shown by
            # help()): the classes that pickle (metrics, estimators, windows,
            # clocks) define __reduce__; the others refused pickling anyway
            "auto_pickle": False,
        },
    )
)
