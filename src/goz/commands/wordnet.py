"""`goz wordnet show WNID|WORD`: a synset of the packaged WordNet 3.0 noun hierarchy."""

from __future__ import annotations

import goz.wordnet
from goz.errors import GozError

ORDER = 55


def add_commands(subparsers) -> None:
    wordnet = subparsers.add_parser("wordnet", help="look up the packaged WordNet 3.0 noun hierarchy")
    actions = wordnet.add_subparsers(dest="wordnet_command", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="lemmas, gloss, parents and depth of a synset, or the senses of a word")
    show.add_argument("query", nargs="+", help="a WordNet id (n02084071) or a noun (dog, 'hot dog')")
    show.set_defaults(run=run_show)


def _title(hierarchy, wnid: str) -> str:
    return f"{wnid} {', '.join(hierarchy.lemmas(wnid))}"


def run_show(args) -> int:
    hierarchy = goz.wordnet.load()
    for query in args.query:
        if query in hierarchy:
            synset = hierarchy.synsets[query]
            print(_title(hierarchy, query))
            print(f"  gloss      {synset.gloss}")
            print(f"  tag counts {', '.join(f'{lemma} {count}' for lemma, count in zip(synset.lemmas, synset.lemma_counts))}")
            print(f"  senses     {', '.join(f'{lemma} #{n}' for lemma, n in zip(synset.lemmas, synset.sense_numbers))}")
            for parent in synset.hypernyms:
                print(f"  hypernym   {_title(hierarchy, parent)}")
            for parent in synset.instance_hypernyms:
                print(f"  instance of {_title(hierarchy, parent)}")
            print(f"  depth      {hierarchy.depth(query)} (longest path {hierarchy.depth(query, longest=True)})")
            print(f"  children   {len(hierarchy.children(query))}, descendants {len(hierarchy.descendants(query))}")
            continue
        senses = hierarchy.senses(query)
        if not senses:
            raise GozError(f"{query!r} is neither a noun synset id nor a noun of WordNet 3.0")
        print(f"{query}: {len(senses)} noun sense(s), most frequent first")
        for number, wnid in enumerate(senses, 1):
            print(f"  {number}. {_title(hierarchy, wnid)}: {hierarchy.gloss(wnid)}")
    return 0
