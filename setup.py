"""jconv's optional C++ part: oneDNN convolutions and max pooling for XLA:CPU (``jconv/_src/csrc``).

Built where the build requirements brought the XLA FFI headers (jaxlib) and oneDNN's headers
and library (``onednn-devel-cpu-gomp``, Linux x86-64 only). Anywhere else, or if the compiler
fails, jconv installs without it and runs on XLA's convolutions (``jc.cpu_conv_backend()``).
"""

import importlib.metadata
import importlib.util
from pathlib import Path

from setuptools import Extension, setup


def _file(dist: str, path: str) -> Path:
    """The installed file of ``dist`` whose path ends with ``path``."""
    d = importlib.metadata.distribution(dist)
    files = (Path(d.locate_file(f)).resolve() for f in d.files or ())  # RECORD paths are relative
    return next(f for f in files if f.as_posix().endswith(path))


def _extensions() -> list:
    try:
        jaxlib = importlib.util.find_spec("jaxlib")
        ffi_include = Path(jaxlib.submodule_search_locations[0]) / "include"
        dnnl_include = _file("onednn-devel-cpu-gomp", "include/oneapi/dnnl/dnnl.hpp").parents[2]
        dnnl_lib = _file("onednn-cpu-gomp", "lib/libdnnl.so").parent
    except (AttributeError, StopIteration, TypeError, importlib.metadata.PackageNotFoundError) as err:
        print(f"jconv: not building the oneDNN extension ({err!r}); jconv will use XLA's convolutions")
        return []
    return [
        Extension(
            "jconv._src._onednn_conv",
            ["jconv/_src/csrc/onednn_conv.cc", "jconv/_src/csrc/onednn_pool.cc"],
            depends=["jconv/_src/csrc/onednn_common.h"],
            include_dirs=[str(ffi_include), str(dnnl_include)],
            library_dirs=[str(dnnl_lib)],
            libraries=["dnnl"],  # found at run time by loading the wheel's libdnnl.so.3 first
            extra_compile_args=["-std=c++17", "-O2", "-Wno-return-type"],
            language="c++",
            optional=True,  # a failed build is a warning: jconv still installs
        )
    ]


setup(ext_modules=_extensions())
