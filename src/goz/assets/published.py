"""The original benchmark's published tables: its class vectors and its graph models' classifiers.

`goz fetch published` gets, from the GOZ repository at the pinned commit, `data/semantics/glove`
(the class-vector table its linear baselines used) and `data/models/gcn_6`, `gcn_2`, `adgpm` (the
classifiers its graph baselines predicted, bias as last column). Each is checked by its git blob id,
read by an allow-list unpickler and converted into goz's own formats: a semantics table
(`goz.semantics`) and classifier tables (`goz.models.classifier_table`), under GOZ_HOME/published/.

The files are pandas pickles written in 2019 (pandas 0.2x, numpy 1.x). Unpickling runs whatever
callables a pickle names, so these are read by an unpickler that resolves only the constructors a
DataFrame of numbers needs (the pandas and numpy ones, under their 2019 and current module paths)
and refuses every other name before anything runs. pandas rebuilds the DataFrame (its own
compatibility unpickler handles the old internals), so reading needs the optional `pandas`
(`pip install goz[published]`).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import logging
from pathlib import Path

import numpy as np

from goz.catalog import PublishedTable
from goz.errors import FetchError, GozError
from goz.home import CHUNK_BYTES
from goz.names import WNID_PATTERN

log = logging.getLogger(__name__)



def git_blob_id(path: str | Path) -> str:
    """The git blob id of a file: sha1 of `blob <size>\\0` followed by the content."""
    path = Path(path)
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def check_blob_id(path: Path, expected: str) -> None:
    actual = git_blob_id(path)
    if actual != expected:
        raise FetchError(f"{path}: git blob id {actual}, expected {expected} (not the published file)")


# -- reading the pickles ---------------------------------------------------------------------------------

def _allowed_names() -> dict[tuple[str, str], tuple[str, str]]:
    """(module, name) a pickle may reference -> where that object lives now. Nothing else resolves."""
    numpy_core = [("numpy.core.multiarray", "numpy._core.multiarray"), ("numpy._core.multiarray", "numpy._core.multiarray"),
                  ("numpy.core.numeric", "numpy._core.numeric"), ("numpy._core.numeric", "numpy._core.numeric")]
    allowed = {("numpy", "ndarray"): ("numpy", "ndarray"), ("numpy", "dtype"): ("numpy", "dtype"),
               ("_codecs", "encode"): ("_codecs", "encode"),   # bytes in protocol-2 pickles written by Python 3
               ("builtins", "slice"): ("builtins", "slice"), ("__builtin__", "slice"): ("builtins", "slice")}
    for old, new in numpy_core:
        if old.endswith("multiarray"):
            allowed[(old, "_reconstruct")] = (new, "_reconstruct")
            allowed[(old, "scalar")] = (new, "scalar")
        else:
            allowed[(old, "_frombuffer")] = (new, "_frombuffer")
    frame, manager, index, range_index = (("pandas.core.frame", "DataFrame"), ("pandas.core.internals", "BlockManager"),
                                          ("pandas.core.indexes.base", "Index"), ("pandas.core.indexes.range", "RangeIndex"))
    for module in ("pandas", "pandas.core.frame"):
        allowed[(module, "DataFrame")] = frame
    for module in ("pandas.core.internals", "pandas.core.internals.managers"):
        allowed[(module, "BlockManager")] = manager
    allowed[("pandas._libs.internals", "_unpickle_block")] = ("pandas._libs.internals", "_unpickle_block")
    allowed[("pandas.core.internals.blocks", "new_block")] = ("pandas._libs.internals", "_unpickle_block")
    for module in ("pandas", "pandas.core.indexes.base", "pandas.indexes.base", "pandas.core.index"):
        allowed[(module, "Index")] = index
        allowed[(module, "_new_Index")] = ("pandas.core.indexes.base", "_new_Index")
    for module in ("pandas", "pandas.core.indexes.range", "pandas.indexes.range", "pandas.core.index"):
        allowed[(module, "RangeIndex")] = range_index
    for module in ("pandas.core.indexes.numeric", "pandas.indexes.numeric", "pandas.core.index"):
        for name in ("Int64Index", "UInt64Index", "Float64Index"):
            allowed[(module, name)] = index  # removed in pandas 2: a plain Index of that dtype
    return allowed


ALLOWED_GLOBALS = _allowed_names()


def _pandas_compat_unpickler() -> type:
    try:
        from pandas.compat.pickle_compat import Unpickler
    except ImportError:
        raise GozError("reading the published tables needs pandas: pip install 'goz[published]'") from None
    return Unpickler


def read_published_table(path: str | Path):
    """A pandas DataFrame from a pickle, unpickled with the allow-list above (nothing else can run)."""
    path = Path(path)
    compat = _pandas_compat_unpickler()

    class AllowListUnpickler(compat):
        # pandas' compatibility unpickler (old internals, removed index classes) behind an allow-list:
        # every callable a pickle can run is obtained through find_class.
        def find_class(self, module: str, name: str):
            target = ALLOWED_GLOBALS.get((module, name))
            if target is None:
                raise GozError(f"{path}: refusing to load a pickle that references {module}.{name}: a published "
                               f"table holds only pandas and numpy data (nothing was run)")
            return getattr(importlib.import_module(target[0]), target[1])

        def persistent_load(self, pid):
            raise GozError(f"{path}: refusing to load a pickle with persistent ids (nothing was run)")

    import pandas as pd
    try:
        with open(path, "rb") as handle:
            value = AllowListUnpickler(io.BytesIO(handle.read()), encoding="latin1").load()
    except GozError:
        raise
    except Exception as error:  # truncated, bad opcode, a constructor refusing its arguments
        raise GozError(f"{path}: not a readable pandas pickle ({type(error).__name__}: {error})") from None
    if not isinstance(value, pd.DataFrame):
        raise GozError(f"{path}: expected a pickled pandas DataFrame, found {type(value).__name__}")
    return value


def _rows(frame, path: Path) -> tuple[list[str], np.ndarray]:
    """(wnids of the index, float32 values) of a DataFrame indexed by wnid."""
    wnids = [w.decode("latin1") if isinstance(w, bytes) else w for w in frame.index]
    bad = [w for w in wnids if not isinstance(w, str) or not WNID_PATTERN.match(w)]
    if bad:
        raise GozError(f"{path}: {len(bad)} index entries are not WordNet ids, e.g. {bad[0]!r}")
    try:
        values = frame.to_numpy(dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise GozError(f"{path}: the values are not numbers ({error})") from None
    if values.ndim != 2 or values.shape[1] < 2 or not np.isfinite(values).all():
        raise GozError(f"{path}: expected a table of finite numbers with at least 2 columns, got {values.shape}")
    return wnids, values


def convert(table: PublishedTable, original: Path, destination: Path) -> Path:
    """The published pickle `original` as goz's format at `destination` (semantics or classifier table)."""
    wnids, values = _rows(read_published_table(original), original)
    attrs = {"data": "published", "source": f"{table.url}", "git_blob_id": table.git_blob_id}
    if table.kind == "semantics":
        from goz.semantics import SemanticsTable
        zero = int((~values.any(axis=1)).sum())
        if zero:  # GOZ's get_glove gives a class none of whose lemmas is found a zero vector
            log.warning("%s: %d of %d classes have an all-zero class vector (kept as published)", original, zero,
                        len(wnids))
        return SemanticsTable(wnids, values, attrs | {"zero_vectors": zero}).save(destination)
    from goz.models.classifier_table import ClassifierTable
    return ClassifierTable(wnids, values[:, :-1], values[:, -1], attrs).save(destination)
