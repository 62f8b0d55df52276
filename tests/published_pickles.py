"""Pickles of wnid-indexed pandas DataFrames as the GOZ repository publishes them, and malicious ones.

`old_pandas_pickle` writes the bytes pandas 0.2x / numpy 1.x wrote (protocol 2, their module paths:
`pandas.core.internals.BlockManager`, `pandas.core.indexes.base._new_Index`,
`numpy.core.multiarray._reconstruct`, raw data through `_codecs.encode`), by hand: the installed
pandas cannot write them.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess

import numpy as np
import pandas as pd

MARK, TUPLE, EMPTY_TUPLE, REDUCE, BUILD, NEWOBJ = b"(", b"t", b")", b"R", b"b", b"\x81"
EMPTY_DICT, SETITEMS, EMPTY_LIST, LIST, NONE, TRUE, FALSE = b"}", b"u", b"]", b"l", b"N", b"\x88", b"\x89"


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


def _tuple(*items: bytes) -> bytes:
    return MARK + b"".join(items) + TUPLE


def _bytes_protocol2(data: bytes) -> bytes:
    # Python 3 writing protocol 2 stores bytes as _codecs.encode(latin-1 text, "latin1")
    return _global("_codecs", "encode") + _tuple(_text(data.decode("latin1")), _text("latin1")) + REDUCE


def _dtype(dtype: np.dtype, numpy_core: str) -> bytes:
    if dtype == object:
        name, state = "O8", _tuple(_int(3), _text("|"), NONE, NONE, NONE, _int(-1), _int(-1), _int(63))
    else:
        name = dtype.str[1:]
        state = _tuple(_int(3), _text("<"), NONE, NONE, NONE, _int(-1), _int(-1), _int(0))
    return _global("numpy", "dtype") + _tuple(_text(name), FALSE, TRUE) + REDUCE + state + BUILD


def _ndarray(array: np.ndarray, numpy_core: str) -> bytes:
    if array.dtype == object:
        data = MARK + b"".join(_text(str(x)) for x in array.ravel()) + LIST
    else:
        data = _bytes_protocol2(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes())
    head = _global(numpy_core, "_reconstruct") + _tuple(_global("numpy", "ndarray"), _tuple(_int(0)),
                                                          _bytes_protocol2(b"b")) + REDUCE
    shape = _tuple(*(_int(n) for n in array.shape))
    return head + _tuple(_int(1), shape, _dtype(array.dtype, numpy_core), FALSE, data) + BUILD


def _index(values: np.ndarray, numpy_core: str, module: str = "pandas.core.indexes.base",
           cls: tuple[str, str] = ("pandas.core.indexes.base", "Index")) -> bytes:
    state = EMPTY_DICT + MARK + _text("data") + _ndarray(values, numpy_core) + _text("name") + NONE + SETITEMS
    return _global(module, "_new_Index") + _tuple(_global(*cls), state) + REDUCE


def _range_index(stop: int) -> bytes:
    state = EMPTY_DICT + MARK + _text("name") + NONE + _text("start") + _int(0) + _text("stop") + _int(stop) \
        + _text("step") + _int(1) + SETITEMS
    return _global("pandas.core.indexes.base", "_new_Index") + _tuple(
        _global("pandas.core.indexes.range", "RangeIndex"), state) + REDUCE


def old_pandas_pickle(wnids: list[str], values: np.ndarray, *, numpy_core: str = "numpy.core.multiarray",
                      int64_columns: bool = False, manager: str = "pandas.core.internals") -> bytes:
    """A DataFrame(values, index=wnids) as pandas 0.2x pickled it (one float block, BlockManager state 0.14.1)."""
    n_columns = values.shape[1]
    columns = (_index(np.arange(n_columns, dtype=np.int64), numpy_core,
                      cls=("pandas.core.indexes.numeric", "Int64Index")) if int64_columns else _range_index(n_columns))
    index = _index(np.array(wnids, dtype=object), numpy_core)
    block = _ndarray(np.ascontiguousarray(values.T), numpy_core)   # blocks hold (columns, rows)
    locs = _global("__builtin__", "slice") + _tuple(_int(0), _int(n_columns), _int(1)) + REDUCE
    axes = MARK + columns + index + LIST
    extra = EMPTY_DICT + MARK + _text("0.14.1") + EMPTY_DICT + MARK + _text("axes") + axes + _text("blocks") \
        + MARK + EMPTY_DICT + MARK + _text("values") + block + _text("mgr_locs") + locs + SETITEMS + LIST \
        + SETITEMS + SETITEMS
    state = _tuple(axes, MARK + block + LIST, MARK + columns + LIST, extra)
    block_manager = _global(manager, "BlockManager") + EMPTY_TUPLE + NEWOBJ + state + BUILD
    frame_state = EMPTY_DICT + MARK + _text("_data") + block_manager + _text("_typ") + _text("dataframe") \
        + _text("_metadata") + EMPTY_LIST + SETITEMS
    return b"\x80\x02" + _global("pandas.core.frame", "DataFrame") + EMPTY_TUPLE + NEWOBJ + frame_state + BUILD + b"."


def current_pandas_pickle(wnids: list[str], values: np.ndarray, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """The same table pickled by the installed pandas (an object index, as pandas before 3 made one)."""
    return pickle.dumps(pd.DataFrame(values, index=pd.Index(wnids, dtype=object)), protocol=protocol)


class _Call:
    """Pickles as a call of `function(*args)`: what a malicious pickle does."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def malicious_pickles(marker) -> dict[str, bytes]:
    """Pickles that would create the file `marker` if anything in them ran."""
    command = f"touch {marker}"
    return {
        "os.system": pickle.dumps(_Call(os.system, command)),
        "builtins.eval": pickle.dumps(_Call(eval, f"open({str(marker)!r}, 'w').close()")),
        "subprocess.Popen": pickle.dumps(_Call(subprocess.Popen, ["touch", str(marker)])),
        # hidden inside an otherwise valid table (as the data of its index)
        "os.system inside a table": old_pandas_pickle(["n00000001"], np.ones((1, 3))).replace(
            _text("n00000001"), pickle.dumps(_Call(os.system, command), protocol=2)[2:-1]),
    }
