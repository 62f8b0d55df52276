"""`check_split`: the structural rules a zero-shot split must follow (the GOZ conditions).

Seen and unseen are disjoint; no class of seen + unseen is an ancestor or a descendant of
another (else a test class is partly a training class); every class is a synset of the
hierarchy, has images and, when a semantics table is given, a class vector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from goz.semantics import SemanticsTable
from goz.wordnet import Hierarchy


@dataclass(frozen=True)
class Violation:
    rule: str        # overlap | unknown | ancestor | images | vector
    wnid: str
    message: str


@dataclass
class CheckReport:
    unseen: int
    seen: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        """One line per violation, then a verdict line."""
        lines = [f"{v.rule:8s} {v.wnid}  {v.message}" for v in self.violations]
        classes = f"{self.unseen} unseen" + (f" + {self.seen} seen" if self.seen else "") + " classes"
        verdict = (f"ok: {classes} pass every check" if self.ok
                   else f"FAILED: {len(self.violations)} violations among {classes}")
        return "\n".join(lines + [verdict])


def check_split(unseen: Sequence[str], seen: Sequence[str] = (), *, hierarchy: Hierarchy,
                counts: Mapping[str, int] | None = None, min_images: int = 1,
                semantics: SemanticsTable | None = None) -> CheckReport:
    """Every violation of the split rules by `unseen` (and `seen`, when given); `counts` and
    `semantics` enable the image and class-vector checks."""
    report = CheckReport(len(unseen), len(seen))
    add = report.violations.append
    role = {w: "seen" for w in seen}
    for wnid in unseen:
        if wnid in role:
            add(Violation("overlap", wnid, "is both a seen and an unseen class"))
        else:
            role[wnid] = "unseen"
    for wnid in role:
        if wnid not in hierarchy:
            add(Violation("unknown", wnid, f"{role[wnid]} class is not a synset of the hierarchy"))
    for wnid in role:
        if wnid not in hierarchy:
            continue
        for ancestor in sorted(hierarchy.ancestors(wnid) & role.keys()):
            add(Violation("ancestor", wnid, f"{role[wnid]} class {_name(hierarchy, wnid)} is a descendant of "
                                            f"{role[ancestor]} class {ancestor} {_name(hierarchy, ancestor)}"))
    if counts is not None:
        for wnid in role:
            if counts.get(wnid, 0) < min_images:
                add(Violation("images", wnid, f"{role[wnid]} class has {counts.get(wnid, 0)} images "
                                              f"(at least {min_images} required)"))
    if semantics is not None:
        for wnid in role:
            if wnid not in semantics:
                add(Violation("vector", wnid, f"{role[wnid]} class has no class vector"))
    return report


def _name(hierarchy: Hierarchy, wnid: str) -> str:
    lemmas = hierarchy.lemmas(wnid)
    return f"({lemmas[0]})" if lemmas else ""
