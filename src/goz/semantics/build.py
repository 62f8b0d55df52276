"""The embed stage's one entry point: a semantics table for classes, from word vectors or a text encoder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from goz.catalog import glove_path
from goz.errors import GozError
from goz.semantics.table import SemanticsTable
from goz.semantics.word_vectors import embed


def build_semantics(wnids: Sequence[str], *, encoder: str | None = None, vectors: str | Path | None = None,
                    fmt: str | None = None, member: str | None = None, normalize: bool = False,
                    lemma_case: str = "lower", text: str = "lemmas", templates: Sequence[str] | str | Path | None = None,
                    class_names: str = "lemmas", device: str = "cpu", batch_size: int = 256, hierarchy=None,
                    progress: bool = True) -> SemanticsTable:
    """The semantics table of `wnids`, from one source: a text `encoder` (`clip:...`,
    `sentence-transformers:...`; `text`, `templates`, `class_names`, `device`, `batch_size` apply) or a
    word-vector file (`vectors`, default the GloVe 6B zip `goz fetch glove` installs; `fmt`, `member`,
    `normalize`, `lemma_case` apply). Options of the other source are refused rather than ignored.
    """
    if encoder is not None:
        if vectors or fmt or member or normalize or lemma_case != "lower":
            raise GozError("a text encoder (--encoder) and word-vector options (--vectors, --format, --member, "
                           "--normalize, --lemma-case) are exclusive: a table comes from one source")
        from goz.semantics.encoders import embed_classes  # loads torch and the encoders only when asked

        return embed_classes(encoder, wnids, hierarchy, text=text, templates=templates, class_names=class_names,
                             device=device, batch_size=batch_size, progress=progress)
    if templates or text != "lemmas" or class_names != "lemmas":
        raise GozError("--text, --class-names and --prompts apply to a text encoder (--encoder); word vectors are "
                       "averaged over the lemmas")
    return embed(vectors or glove_path(), wnids, hierarchy, fmt=fmt, member=member, normalize=normalize,
                 lemma_case=lemma_case, progress=progress)
