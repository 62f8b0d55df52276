"""The `clip:ARCH[:PRETRAINED]` spec: its one parser, and the open_clip model it names.

Both towers of a CLIP model go through here, so that an image store (`goz extract --backbone clip:...`)
and a class table (`goz embed --encoder clip:...`) made from the same weights record the same spec,
and `goz bench` can tell when they come from one model. PRETRAINED is an open_clip tag (`openai`), a
local checkpoint file (recorded as `clip:ARCH:sha256=<hex>`), or absent: random weights drawn from
torch seed `CLIP_SEED`, identical on both sides (for tests and offline machines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from goz.errors import GozError
from goz.home import sha256_of

CLIP_SEED = 0
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


@dataclass(frozen=True)
class ClipWeights:
    """What a parsed spec names: the architecture, and a published tag or a local checkpoint (or neither)."""

    arch: str
    tag: str | None = None
    checkpoint: Path | None = None

    @property
    def spec(self) -> str:
        """The spec recorded in stores and tables: a checkpoint by its sha256, never by its path."""
        if self.checkpoint is not None:
            return f"clip:{self.arch}:sha256={sha256_of(self.checkpoint)}"
        return f"clip:{self.arch}" + (f":{self.tag}" if self.tag else "")


def parse_clip_spec(spec: str, weights_file: str | Path | None = None) -> ClipWeights:
    """`clip:ARCH[:PRETRAINED]` (the `clip:` prefix optional) plus an optional checkpoint file, checked.

    A recorded `sha256=<hex>` tag needs `weights_file` with that sha256 (how `goz verify` rebuilds a model).
    """
    rest = spec.removeprefix("clip:")
    arch, _, tag = rest.partition(":")
    if not arch:
        raise GozError(f"{spec!r} names no CLIP architecture (e.g. clip:ViT-B-32:openai)")
    tag = tag or None
    checkpoint = None
    if tag and tag.startswith("sha256="):
        if weights_file is None:
            raise GozError(f"clip:{arch}:{tag} was made from a local checkpoint: give that file (--weights-file "
                           f"PATH, or clip:{arch}:PATH)")
        checkpoint = Path(weights_file).resolve()
        if checkpoint.is_file() and sha256_of(checkpoint) != tag.split("=", 1)[1]:
            raise GozError(f"{checkpoint}: sha256 differs from the checkpoint of clip:{arch}:{tag}")
    elif tag and (Path(tag).is_file() or "/" in tag or tag.endswith(CHECKPOINT_SUFFIXES)):
        if weights_file is not None:
            raise GozError(f"clip:{arch}:{tag} names a checkpoint already; drop --weights-file")
        checkpoint = Path(tag).resolve()
    elif weights_file is not None:
        if tag:
            raise GozError(f"clip:{arch}:{tag} names published weights; drop --weights-file or the tag")
        checkpoint = Path(weights_file).resolve()
    if checkpoint is not None and not checkpoint.is_file():
        raise GozError(f"{checkpoint}: no such CLIP checkpoint file")
    return ClipWeights(arch, None if checkpoint is not None else tag, checkpoint)


def create_clip_model(weights: ClipWeights, device=None):
    """The open_clip model (eval mode) `weights` names; a clear GozError for anything open_clip refuses."""
    try:
        import open_clip
        import torch
    except ImportError:
        raise GozError("CLIP models need open_clip: pip install open_clip_torch (or goz[clip] / goz[text])") from None
    if weights.arch not in open_clip.list_models():
        raise GozError(f"clip:{weights.arch}: not an open_clip architecture (see open_clip.list_models(), "
                       f"e.g. ViT-B-32)")
    try:
        if weights.tag:
            model = open_clip.create_model(weights.arch, pretrained=weights.tag, device=device)
        else:
            with torch.random.fork_rng(devices=[]):  # the same random weights on the image and the text side
                torch.manual_seed(CLIP_SEED)
                model = open_clip.create_model(weights.arch, pretrained=None)
            if weights.checkpoint is not None:
                open_clip.load_checkpoint(model, str(weights.checkpoint))
            if device is not None:
                model = model.to(device)
    except Exception as error:  # a download refused offline, an unknown tag, a corrupt or mismatched checkpoint
        first_line = str(error).splitlines()[0] if str(error) else ""
        if weights.checkpoint is not None:
            raise GozError(f"{weights.checkpoint}: not an open_clip {weights.arch} checkpoint "
                           f"({type(error).__name__}: {first_line})") from None
        raise GozError(f"could not create {weights.spec} ({type(error).__name__}: {first_line}); on a machine "
                       f"without internet give a local open_clip checkpoint (clip:{weights.arch}:/path/to/file.pt "
                       f"or --weights-file PATH)") from None
    return model.eval()
