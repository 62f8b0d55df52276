"""Hierarchy edge files, `child<TAB>parent` per line: the one reader (cycle-checked) and writer.

Every command that takes `--hierarchy EDGES.tsv` (split, bench, analyze) reads it here, so a
cyclic file is refused everywhere, within seconds, before a graph query could loop on it.
"""

from __future__ import annotations

from pathlib import Path

from goz.errors import GozError
from goz.home import write_text_atomic
from goz.names import WNID_PATTERN
from goz.wordnet.hierarchy import Hierarchy


def save_edges(edges: list[tuple[str, str]], path: str | Path, header: str | None = None) -> Path:
    """Writes (child, parent) edges as `child<TAB>parent` lines (atomic); `header` becomes a `#` comment first."""
    return write_text_atomic(path, (f"# {header}\n" if header else "")
                             + "".join(f"{child}\t{parent}\n" for child, parent in edges))


def load_edges(path: str | Path) -> Hierarchy:
    """A hierarchy from a `child<TAB>parent` edges file; `#` starts a comment. Refused if it has a cycle."""
    path = Path(path)
    if not path.is_file():
        raise GozError(f"{path}: no such hierarchy edges file (child<TAB>parent per line)")
    edges = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise GozError(f"{path}: not a UTF-8 text file of child<TAB>parent edges") from None
    for number, line in enumerate(lines, 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if len(fields) != 2:
            raise GozError(f"{path}:{number}: expected 'child<TAB>parent', found {line!r}")
        bad = [field for field in fields if not WNID_PATTERN.match(field)]
        if bad:
            raise GozError(f"{path}:{number}: {bad[0]!r} is not a WordNet id (n + 8 digits)")
        edges.append((fields[0], fields[1]))
    if not edges:
        raise GozError(f"{path}: no edges")
    hierarchy = Hierarchy.from_edges(edges)
    _require_acyclic(hierarchy, path)
    return hierarchy


def _require_acyclic(hierarchy: Hierarchy, path: Path) -> None:
    # Kahn's algorithm: graph queries (ancestors, depth) assume a DAG and would never end on a cycle.
    pending = {w: len(hierarchy.parents(w)) for w in hierarchy.synsets}
    ready = [w for w, n in pending.items() if n == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for child in hierarchy.children(node):
            pending[child] -= 1
            if pending[child] == 0:
                ready.append(child)
    if done < len(hierarchy):
        cycle = sorted(w for w, n in pending.items() if n > 0)
        raise GozError(f"{path}: the edges form a cycle through {', '.join(cycle[:5])}; "
                       f"a hierarchy must be acyclic (fix or remove those lines)")


def load_hierarchy(source: str | Path = "wordnet") -> Hierarchy:
    """`wordnet` (the packaged WordNet 3.0 nouns) or an edges file (`load_edges`)."""
    if str(source) == "wordnet":
        from goz.wordnet.packaged import load
        return load()
    return load_edges(source)
