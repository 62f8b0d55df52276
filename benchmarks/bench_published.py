"""Reading and converting the published tables at their real sizes (`goz fetch published`'s work after the download).

    PYTHONPATH=src python benchmarks/bench_published.py

The GOZ repository's tables are pandas pickles indexed by wnid: the class vectors (300 columns) and
three classifier tables (2049 columns, bias last). Their row counts are not known here (the files are
not available offline), so each is measured at 1,500 rows (seen + unseen classes) and at 21,842 rows
(every ImageNet-21K class); the values are random. Each table is written both as pandas 0.2x wrote it
(protocol 2, old module paths, hand-assembled as in the tests) and by the installed pandas
(protocol 5), then read with the allow-list unpickler and converted (`convert`). Writes
benchmarks/results/bench_published.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from published_pickles import current_pandas_pickle, old_pandas_pickle  # noqa: E402

from goz.assets import published  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bench_published.json"


def main() -> None:
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as directory:
        for name, columns in (("glove", 300), ("gcn_6", 2049)):
            for count in (1500, 21842):
                wnids = [f"n{i:08d}" for i in range(count)]
                values = rng.normal(size=(count, columns)).astype(np.float32)
                for writer, make in (("pandas 0.2x", old_pandas_pickle), ("pandas now", current_pandas_pickle)):
                    path = Path(directory) / f"{name}_{count}_{writer[-3:]}"
                    path.write_bytes(make(wnids, values))
                    start = time.perf_counter()
                    frame = published.read_published_table(path)
                    read = time.perf_counter() - start
                    start = time.perf_counter()
                    published.convert(published.PUBLISHED_TABLES[name], path, Path(directory) / f"{name}.h5")
                    rows.append({"table": name, "rows": count, "columns": columns, "written_by": writer,
                                 "mib": path.stat().st_size / 2**20, "read_seconds": read,
                                 "read_and_convert_seconds": time.perf_counter() - start})
                    assert frame.shape == values.shape
    print(f"{'table':<6} {'rows':>6} {'cols':>5} {'written by':<12} {'MiB':>7} {'read s':>7} {'read+convert s':>15}")
    for r in rows:
        print(f"{r['table']:<6} {r['rows']:>6} {r['columns']:>5} {r['written_by']:<12} {r['mib']:>7.1f} "
              f"{r['read_seconds']:>7.2f} {r['read_and_convert_seconds']:>15.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
