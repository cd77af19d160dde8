"""Reading the model zoo's ``.pkl`` files without letting them run code.

A pickle is a small program: any global it names is imported and may be called. The official
Mask2Former (detectron2) weight files hold nothing but a dict of numpy arrays and a few plain
values, so the unpickler here resolves only the handful of globals that build numpy arrays and
plain containers; a file that names anything else is refused before that thing is touched.
"""

from __future__ import annotations

import codecs
import collections
import io
import pickle
from typing import Any

import numpy as np

from mask2former.errors import CheckpointError, brief


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's pickled arrays start as an empty array (shape ``(0,)``) filled by ``__setstate__``,
    which checks the data's length; any other shape here would allocate what the file claims."""
    if subtype is not np.ndarray or tuple(shape) != (0,):
        raise pickle.UnpicklingError(f"unexpected array reconstruction {brief((subtype, shape))}")
    return np._core.multiarray._reconstruct(subtype, shape, dtype)  # type: ignore[attr-defined]


def _latin1(text: Any, encoding: str = "utf-8") -> bytes:
    """Protocol 2 stores bytes as ``_codecs.encode(text, "latin1")``; no other codec is needed."""
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise pickle.UnpicklingError(f"unexpected text encoding {brief(encoding)}")
    return codecs.encode(text, "latin1")


# (module, name) -> object. numpy 1.x wrote "numpy.core.*", numpy 2 writes "numpy._core.*": both
# resolve to the installed numpy's functions.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("_codecs", "encode"): _latin1,
}
for _module in ("builtins", "__builtin__"):  # protocols 0-1 spell plain containers as globals
    for _type in (set, frozenset, bytearray, complex):
        _ALLOWED[(_module, _type.__name__)] = _type
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = np._core.multiarray.scalar  # type: ignore[attr-defined]
for _module in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5 writes arrays as buffers
    _ALLOWED[(_module, "_frombuffer")] = np._core.numeric._frombuffer  # type: ignore[attr-defined]


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle named a global outside the allowed set."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name
        super().__init__(f"{module}.{name}")


class _ArraysOnly(pickle._Unpickler):
    """The pure-Python unpickler: its memo is a dict, where the C one grows an array to whatever
    index a (damaged) file names - 175 million entries, 1.4 GB, from one byte of a 4 MB file."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise RefusedGlobal(module, name) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def refusal(source: str, what: str) -> CheckpointError:
    """The error for a file that asks to run code: it says the file was refused and why."""
    return CheckpointError(
        f"{source}: refused to load: the file asks to run {what}, and a weights file needs nothing but "
        "arrays and plain values (it may have been tampered with, or is not a model file)")


def load_arrays_pickle(data: bytes, source: str) -> Any:
    """Unpickle ``data`` (a model-zoo ``.pkl``'s bytes) admitting only numpy arrays, their dtypes
    and scalars, and plain containers and numbers; anything else raises ``CheckpointError``.

    Bytes, not an open file: a damaged length field (a 2 GB string in a 4 MB file) makes the
    unpickler ask a file for that many bytes, which Python allocates before finding the end of
    the file; from memory the read just comes up short.
    """
    try:
        return _ArraysOnly(io.BytesIO(data), encoding="latin1").load()
    except RefusedGlobal as e:
        raise refusal(source, f"{e.module}.{e.name}") from None
    except Exception as e:  # noqa: BLE001 - any other unpickling failure means a broken file
        raise CheckpointError(f"{source}: cannot read as a pickle checkpoint ({type(e).__name__}: "
                              f"{str(e)[:160]})") from None
