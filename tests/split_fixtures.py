"""A small synthetic noun hierarchy with known answers, shared by the split and analysis tests.

    n00000000 root
    ├── n00000001 animal
    │   ├── n00000011 dog ── n00000111 husky (seen), n00000112 poodle (seen), n00000113 beagle
    │   └── n00000012 cat ── n00000121 tabby, n00000122 siamese
    │                        └── n00000123 kitten ── n00001231 ginger kitten
    └── n00000002 tool
        ├── n00000021 hammer ── n00000211 claw hammer (seen), n00000212 mallet
        └── n00000022 saw ──── n00000221 hacksaw, n00000222 bandsaw
    n00000123 kitten has a second parent: n00000022 saw (a DAG, as WordNet is).
"""

from __future__ import annotations

import numpy as np

from goz.wordnet import Hierarchy

ROOT, ANIMAL, TOOL = "n00000000", "n00000001", "n00000002"
DOG, CAT, HAMMER, SAW = "n00000011", "n00000012", "n00000021", "n00000022"
HUSKY, POODLE, BEAGLE = "n00000111", "n00000112", "n00000113"
TABBY, SIAMESE, KITTEN, GINGER = "n00000121", "n00000122", "n00000123", "n00001231"
CLAW, MALLET, HACKSAW, BANDSAW = "n00000211", "n00000212", "n00000221", "n00000222"

EDGES = [(ANIMAL, ROOT), (TOOL, ROOT), (DOG, ANIMAL), (CAT, ANIMAL), (HAMMER, TOOL), (SAW, TOOL),
         (HUSKY, DOG), (POODLE, DOG), (BEAGLE, DOG), (TABBY, CAT), (SIAMESE, CAT), (KITTEN, CAT),
         (KITTEN, SAW), (GINGER, KITTEN), (CLAW, HAMMER), (MALLET, HAMMER), (HACKSAW, SAW), (BANDSAW, SAW)]
LEMMAS = {ROOT: ["entity"], ANIMAL: ["animal"], TOOL: ["tool"], DOG: ["dog"], CAT: ["cat"],
          HAMMER: ["hammer"], SAW: ["saw"], HUSKY: ["husky"], POODLE: ["poodle"], BEAGLE: ["beagle"],
          TABBY: ["tabby"], SIAMESE: ["siamese"], KITTEN: ["kitten"], GINGER: ["ginger_kitten"],
          CLAW: ["claw_hammer"], MALLET: ["mallet"], HACKSAW: ["hacksaw"], BANDSAW: ["bandsaw"]}
SEEN = [HUSKY, POODLE, CLAW]
LEAVES = [HUSKY, POODLE, BEAGLE, TABBY, SIAMESE, GINGER, CLAW, MALLET, HACKSAW, BANDSAW]

COUNTS = {w: 200 for w in [ROOT, ANIMAL, TOOL, DOG, CAT, HAMMER, SAW, BEAGLE, TABBY, KITTEN, GINGER, MALLET,
                           HACKSAW, HUSKY, POODLE, CLAW]} | {BANDSAW: 10, SIAMESE: 10}

CANDIDATES = [BEAGLE, DOG, KITTEN, GINGER, HUSKY, TABBY, HACKSAW, SIAMESE]
# (true, predicted): correct, ancestor, descendant, sibling, within 4 hops, unrelated, sibling
PAIRS = [(BEAGLE, BEAGLE), (BEAGLE, DOG), (KITTEN, GINGER), (BEAGLE, HUSKY), (TABBY, BEAGLE),
         (BEAGLE, HACKSAW), (TABBY, SIAMESE)]


def write_predictions(path, pairs, candidates=CANDIDATES):
    index = {w: i for i, w in enumerate(candidates)}
    true = np.array([index[t] for t, _ in pairs])
    topk = np.array([[index[p]] + [index[t]] * 4 for t, p in pairs])
    np.savez(path, candidates=np.array(candidates), true=true, topk=topk,
             sample_wnids=np.array([t for t, _ in pairs]), sample_ids=np.arange(len(pairs), dtype=np.int64))


def hierarchy() -> Hierarchy:
    return Hierarchy.from_edges(EDGES, LEMMAS)


def write_edges(path) -> None:
    path.write_text("".join(f"{child}\t{parent}\n" for child, parent in EDGES), encoding="utf-8")
