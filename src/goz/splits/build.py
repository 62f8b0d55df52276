"""`build_split`: the GOZ construction of an unseen split, every step an option.

1. candidates: synsets with at least `min_images` images (and fewer than `max_images` when given;
   not seen, in the hierarchy, and among `available` when given: e.g. the classes of a test store);
2. lemma filter: keep a class only if some lemma names it well (see `goz.splits.lemmas`);
3. branch exclusions: whole subtrees (`exclude`) or subtrees without their root (`exclude_below`);
   a descendant that also has a parent outside the excluded branch stays, as in GOZ;
4. hierarchy filter: deepest candidates first, accept one only if it is neither an ancestor nor a
   descendant of a seen class or of a class accepted before (ties in depth: seeded order). What
   is left is the candidate pool (`BuiltSplit.candidates`, `--write-candidates`);
5. either distribution matching (`size`): walk a spanning tree of the hierarchy (each synset under
   its first parent) top-down and split the N classes among a node's children so that the counts
   follow the seen classes' distribution over those children (`ratio=1`), its inverse (`ratio=0`,
   inverse of x = (1 - x) / sum(1 - x)) or a mix, capped by the candidates under each child; the
   shortfall of a capped child goes to the child furthest below its target;
   or a random draw (`sample`): N classes drawn uniformly from the pool under `seed`, as the GOZ
   paper's factor analyses drew their splits.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from goz.errors import GozError, SplitError
from goz.figures import bar_plot, markdown_table
from goz.home import write_text_atomic
from goz.splits.lemmas import LemmaFilter, filter_lemmas
from goz.splits.registry import save as save_split
from goz.wordnet import Hierarchy

log = logging.getLogger(__name__)

VIRTUAL_ROOT = ""  # joins several roots (synthetic hierarchies) into one spanning tree
MAX_BRANCH_SHARE = 0.5
PLOTTED_BRANCHES = 20


@dataclass
class BuiltSplit:
    unseen: list[str]
    stages: dict[str, int]                    # filter step -> classes left after it
    branches: list[tuple[str, int, int, int]]  # (branch wnid, seen, candidates, unseen) per top-level branch
    options: dict = field(default_factory=dict)
    lemmas: dict[str, tuple[str, ...]] = field(default_factory=dict)            # kept lemmas of the unseen classes
    candidates: list[str] = field(default_factory=list)                         # the pool after the hierarchy filter
    candidate_lemmas: dict[str, tuple[str, ...]] = field(default_factory=dict)  # kept lemmas of the pool

    def markdown(self, hierarchy: Hierarchy) -> str:
        options = "\n".join(f"- `{key}`: {value}" for key, value in self.options.items())
        seen_total = sum(b[1] for b in self.branches) or 1
        unseen_total = sum(b[3] for b in self.branches) or 1
        return (f"# Split built by `goz split build`\n\n{options}\n\n## Classes left after each step\n\n"
                + markdown_table(["step", "classes"], list(self.stages.items()))
                + "\n## Classes per top-level branch\n\n"
                + markdown_table(["branch", "name", "seen", "seen %", "candidates after filters", "unseen", "unseen %"],
                                 [[w, _label(hierarchy, w), s, 100.0 * s / seen_total, c, u, 100.0 * u / unseen_total]
                                  for w, s, c, u in self.branches]))


def build_split(seen: Sequence[str], counts: Mapping[str, int], size: int | None, *, hierarchy: Hierarchy,
                min_images: int = 100, max_images: int | None = None,
                lemma_filter: LemmaFilter | None = LemmaFilter(), exclude: Sequence[str] = (),
                exclude_below: Sequence[str] = (), ratio: float = 1.0, seed: int = 0, sample: int | None = None,
                available: Collection[str] | None = None, report_depth: int | None = None,
                out: str | Path | None = None, candidates_out: str | Path | None = None) -> BuiltSplit:
    """The GOZ construction (module docstring): `size` classes by distribution matching, or with
    `sample` a random draw of that many from the candidate pool. Writes the split to `out` and its
    report next to it (`<out>.report.md`, `<out>.report.png`) when `out` is given, and the pool to
    `candidates_out` when given."""
    if not 0.0 <= ratio <= 1.0:
        raise GozError(f"--ratio must lie in [0, 1], got {ratio}")
    if (size is None) == (sample is None):
        raise GozError("give either a split size (distribution matching) or --sample N (a random draw), not both")
    wanted = size if size is not None else sample
    if wanted < 1:
        raise GozError(f"the split size must be at least 1, got {wanted}")
    if max_images is not None and max_images <= min_images:
        raise GozError(f"--max-images ({max_images}) must be above --min-images ({min_images})")
    unknown = [w for w in seen if w not in hierarchy]
    if unknown:
        log.warning("%d seen classes are not in the hierarchy and are ignored: %s", len(unknown), ", ".join(unknown[:10]))
    seen = [w for w in seen if w in hierarchy]
    seen_set = set(seen)
    tiebreak = _seeded_rank(hierarchy, seed)
    stages: dict[str, int] = {}
    candidates = sorted(w for w, n in counts.items() if n >= min_images and (max_images is None or n < max_images)
                        and w in hierarchy and w not in seen_set)
    stages[f"at least {min_images} images" + (f", fewer than {max_images}" if max_images is not None else "")] = \
        len(candidates)
    if available is not None:
        available = set(available)
        candidates = [w for w in candidates if w in available]
        stages[f"among the {len(available)} available classes"] = len(candidates)
    lemmas: dict[str, tuple[str, ...]] = {}
    if lemma_filter is not None:
        lemmas = filter_lemmas(hierarchy, candidates, lemma_filter)
        candidates = [w for w in candidates if w in lemmas]
        stages["lemma filter"] = len(candidates)
    if exclude or exclude_below:
        excluded = excluded_branches(hierarchy, exclude, exclude_below)
        candidates = [w for w in candidates if w not in excluded]
        stages["branch exclusions"] = len(candidates)
    candidates = hierarchy_filter(hierarchy, candidates, seen, tiebreak)
    stages["hierarchy filter"] = len(candidates)
    tree = SpanningTree(hierarchy, [*seen, *candidates])
    if sample is not None:
        unseen = random_draw(candidates, sample, seed)
        stages[f"random draw (seed {seed})"] = len(unseen)
    else:
        unseen = sorted(tree.match_distribution(set(candidates), seen_set, size, ratio, tiebreak))
        stages["distribution matching"] = len(unseen)
    depth = report_depth if report_depth is not None else tree.report_depth([*seen, *unseen])
    options = {"size": size if size is not None else f"random draw of {sample}", "min_images": min_images,
               "max_images": max_images if max_images is not None else "none",
               "ratio": ratio if sample is None else "n/a (random draw)", "seed": seed,
               "lemma_filter": lemma_filter.describe() if lemma_filter is not None else "off",
               "exclude": ", ".join(exclude) or "none", "exclude_below": ", ".join(exclude_below) or "none",
               "seen classes": len(seen), "report depth": depth}
    built = BuiltSplit(unseen, stages, tree.branch_counts(depth, seen, candidates, unseen), options,
                       {w: lemmas[w] for w in unseen if w in lemmas}, sorted(candidates),
                       {w: lemmas[w] for w in candidates if w in lemmas})
    if out is not None:
        write_build_outputs(built, Path(out), hierarchy)
    if candidates_out is not None:
        write_candidates(built, Path(candidates_out))
    return built


def random_draw(pool: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` classes drawn uniformly without replacement from `pool` (sorted first, so the draw depends
    only on the pool's content and the seed); sorted."""
    pool = sorted(pool)
    if len(pool) < n:
        raise SplitError(f"only {len(pool)} candidates pass the filters, a random draw of {n} requested: "
                         f"lower --sample or --min-images, or relax the lemma filter")
    chosen = np.random.default_rng(seed).choice(len(pool), size=n, replace=False)
    return sorted(pool[i] for i in chosen)


def write_candidates(built: BuiltSplit, path: Path) -> Path:
    """The candidate pool (after the hierarchy filter) as a split file; the header says how it was built."""
    options = "; ".join(f"{key}={value}" for key, value in built.options.items()
                        if key not in ("size", "ratio", "report depth"))
    return save_split(built.candidates, path, header=f"candidate pool of goz split build: {options}")


def write_build_outputs(built: BuiltSplit, out: Path, hierarchy: Hierarchy) -> None:
    """The split file, `<out>.report.md` and `<out>.report.png` (seen vs unseen share per branch)."""
    save_split(built.unseen, out)
    write_text_atomic(out.with_name(out.name + ".report.md"), built.markdown(hierarchy))
    seen_total = sum(b[1] for b in built.branches) or 1
    unseen_total = sum(b[3] for b in built.branches) or 1
    shown = sorted(built.branches, key=lambda b: -(b[1] + b[3]))[:PLOTTED_BRANCHES]
    bar_plot(out.with_name(out.name + ".report.png"), [_label(hierarchy, b[0]) or b[0] for b in shown],
             {"seen": [100.0 * b[1] / seen_total for b in shown],
              "unseen": [100.0 * b[3] / unseen_total for b in shown]},
             title=f"Classes per top-level branch ({len(built.unseen)} unseen; the {len(shown)} largest branches)",
             ylabel="% of the split")


def excluded_branches(hierarchy: Hierarchy, exclude: Sequence[str], exclude_below: Sequence[str]) -> set[str]:
    """Synsets removed by the branch exclusions: the `exclude` roots and every descendant of any root
    all of whose parents are removed (the `exclude_below` roots count as removed for that, then stay)."""
    roots = [*exclude, *exclude_below]
    for root in roots:
        if root not in hierarchy:
            raise GozError(f"branch exclusion {root} is not a synset of the hierarchy")
    removed = set(roots)
    below = set().union(*(hierarchy.descendants(root) for root in roots)) if roots else set()
    # Parents come before children in order of longest depth, so one pass settles every node.
    for node in sorted(below - removed, key=lambda w: hierarchy.depth(w, longest=True)):
        if all(p in removed for p in hierarchy.parents(node)):
            removed.add(node)
    return removed - set(exclude_below)


def hierarchy_filter(hierarchy: Hierarchy, candidates: Sequence[str], seen: Sequence[str],
                     tiebreak: Mapping[str, int]) -> list[str]:
    """Greedy, deepest first: a candidate is accepted when it is neither an ancestor nor a descendant
    of a seen class or of an accepted one."""
    blocked: set[str] = set()
    for wnid in seen:
        blocked |= {wnid} | hierarchy.ancestors(wnid) | hierarchy.descendants(wnid)
    accepted = []
    for wnid in sorted(candidates, key=lambda w: (-hierarchy.depth(w, longest=True), tiebreak[w])):
        if wnid not in blocked:
            accepted.append(wnid)
            blocked |= {wnid} | hierarchy.ancestors(wnid) | hierarchy.descendants(wnid)
    return accepted


class SpanningTree:
    """The first-parent spanning tree over some classes and their first-parent chains."""

    def __init__(self, hierarchy: Hierarchy, classes: Sequence[str]):
        self.hierarchy = hierarchy
        self.children: dict[str, list[str]] = {VIRTUAL_ROOT: []}
        self.chain: dict[str, list[str]] = {}   # class -> path from its root down to itself
        for wnid in classes:
            path = [wnid]
            while path[-1] not in self.children and hierarchy.parents(path[-1]):
                self.children[path[-1]] = []
                path.append(hierarchy.parents(path[-1])[0])
            if path[-1] not in self.children:  # a root reached for the first time
                self.children[path[-1]] = []
                self.children[VIRTUAL_ROOT].append(path[-1])
            for child, parent in zip(path, path[1:]):
                self.children[parent].append(child)
        for wnid in classes:
            self.chain[wnid] = self._path_from_root(wnid)

    def _path_from_root(self, wnid: str) -> list[str]:
        path = [wnid]
        while self.hierarchy.parents(path[-1]):
            path.append(self.hierarchy.parents(path[-1])[0])
        return path[::-1]

    def _totals(self, members: set[str]) -> dict[str, int]:
        totals: dict[str, int] = {}
        for wnid in members:
            for node in [VIRTUAL_ROOT, *self.chain[wnid]]:
                totals[node] = totals.get(node, 0) + 1
        return totals

    def match_distribution(self, candidates: set[str], seen: set[str], size: int, ratio: float,
                           tiebreak: Mapping[str, int]) -> list[str]:
        """`size` candidates chosen top-down so that every branch follows the target distribution."""
        capacity, seen_under = self._totals(candidates), self._totals(seen)
        if capacity.get(VIRTUAL_ROOT, 0) < size:
            raise SplitError(f"only {capacity.get(VIRTUAL_ROOT, 0)} candidates pass the filters, "
                             f"{size} requested: lower --size or --min-images, or relax the lemma filter")
        chosen: list[str] = []
        pending = [(VIRTUAL_ROOT, size)]
        while pending:
            node, wanted = pending.pop()
            if node in candidates:
                chosen.append(node)
                wanted -= 1
            # Children holding seen classes but no candidate keep their target share: it is the
            # shortfall that dispatch() hands to their siblings.
            children = [c for c in self.children[node] if capacity.get(c, 0) or seen_under.get(c, 0)]
            if wanted == 0 or not children:
                continue
            capacities = np.array([capacity.get(c, 0) for c in children])
            shares = dispatch(wanted, capacities,
                              target_distribution(np.array([seen_under.get(c, 0) for c in children], float),
                                                  capacities.astype(float), ratio),
                              np.array([tiebreak.get(c, 0) for c in children]))
            pending.extend((c, int(n)) for c, n in zip(children, shares) if n > 0)
        return chosen

    def report_depth(self, classes: Sequence[str]) -> int:
        """The shallowest depth at which no branch holds more than half of `classes` (WordNet with
        the ILSVRC classes: 5, organism / instrumentality / covering / structure / ...)."""
        deepest = max((len(self.chain[w]) - 1 for w in classes), default=1)
        for depth in range(1, deepest + 1):
            if max(Counter(self.branch(w, depth) for w in classes).values()) <= MAX_BRANCH_SHARE * len(classes):
                return depth
        return max(deepest, 1)

    def branch(self, wnid: str, depth: int) -> str:
        """The spanning-tree ancestor of `wnid` at `depth` (`wnid` itself when it is not deeper)."""
        return self.chain[wnid][min(depth, len(self.chain[wnid]) - 1)]

    def branch_counts(self, depth: int, seen: Sequence[str], candidates: Sequence[str],
                      unseen: Sequence[str]) -> list[tuple[str, int, int, int]]:
        """(branch, seen, candidates, unseen) for each spanning-tree node at `depth` holding seen or
        unseen classes (a class above that depth is its own branch), largest seen count first."""
        rows: dict[str, list[int]] = {}
        for column, group in enumerate((seen, candidates, unseen)):
            for wnid in group:
                rows.setdefault(self.branch(wnid, depth), [0, 0, 0])[column] += 1
        return sorted(((w, *n) for w, n in rows.items() if n[0] or n[2]), key=lambda r: (-r[1], -r[3], r[0]))


def target_distribution(seen_counts: np.ndarray, capacities: np.ndarray, ratio: float) -> np.ndarray:
    """ratio * x + (1 - ratio) * inverse(x), x the seen classes' shares (the candidates' shares
    when no seen class lies under any child)."""
    x = seen_counts if seen_counts.sum() > 0 else capacities
    x = x / x.sum()
    inverse = (1.0 - x) / (1.0 - x).sum() if len(x) > 1 else np.ones(1)
    return ratio * x + (1.0 - ratio) * inverse


def dispatch(total: int, capacities: np.ndarray, target: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Integer shares of `total` close to `total * target`, each at most its capacity
    (largest remainder: each extra item goes to the child furthest below its target)."""
    shares = np.minimum(np.floor(total * target + 1e-9).astype(int), capacities)
    # Ties in the deficit go to the child that comes first in the seeded order.
    order = np.argsort(tiebreak, kind="stable")
    while shares.sum() < total:
        deficit = total * target - shares
        open_children = order[shares[order] < capacities[order]]
        shares[open_children[np.argmax(deficit[open_children])]] += 1
    return shares


def _seeded_rank(hierarchy: Hierarchy, seed: int) -> dict[str, int]:
    """A seeded random rank of every synset, to break ties reproducibly."""
    wnids = sorted(hierarchy.synsets)
    permutation = np.random.default_rng(seed).permutation(len(wnids))
    return dict(zip(wnids, permutation.tolist()))


def _label(hierarchy: Hierarchy, wnid: str) -> str:
    return hierarchy.lemmas(wnid)[0] if wnid in hierarchy and hierarchy.lemmas(wnid) else ""
