"""Feature extractors (backbones) by name, each with its own preprocessing: a registry.

A backbone spec is one string, recorded exactly in the store's `backbone` attribute:

- `NAME`: a torchvision classification model (`resnet50`, the default and the GOZ features'
  extractor; `resnet101`, `vit_b_16`, `efficientnet_b0`, ...) with its weight enum; features are
  the input of its final 1000-way layer (replaced by Identity); preprocessing from the weights'
  own `transforms()`. The GOZ features came from `resnet50(pretrained=True)` (IMAGENET1K_V1):
  Resize(256) / CenterCrop(224) / ImageNet mean and std, exactly those transforms.
- `timm:NAME`: a timm model (when timm is installed), its classifier reset (pooled pre-logits
  features), preprocessing from timm's data config (`resolve_data_config`).
- `clip:ARCH[:PRETRAINED]`: an open_clip model's image tower (`encode_image` embeddings, not
  L2-normalized), open_clip's preprocessing. Without PRETRAINED the model is randomly initialised
  with torch seed 0 (tests); a local checkpoint (`clip:ARCH:PATH`, or --weights-file) is recorded
  as `clip:ARCH:sha256=<hex>`.

`weights_file` is a local state dict for any of them. The store records the weights by name only
when the file is the published one (torchvision publishes the first hex digits of each file's
sha256 in its name, and checks them the same way); any other file is `custom` plus its sha256.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import PIL
import torch
import torchvision
from torch import nn
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

import goz
from goz.clip_spec import CLIP_SEED, create_clip_model, parse_clip_spec
from goz.device import resolve_device
from goz.errors import GozError
from goz.extract.dataset import SkippedImage, load_rgb
from goz.home import sha256_of

DEFAULT_BACKBONE = "resnet50"
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FEATURE_DIM = 2048  # ResNet-50's, the GOZ features'
# Store attributes that must agree before new classes may join an existing store.
COMPATIBILITY_KEYS = ("backbone", "model", "weights", "weights_sha256", "preprocessing", "precision", "decoder")


@dataclass(frozen=True)
class Preprocessing:
    """Resize the shorter side (Pillow, antialiased), center crop, scale to [0, 1], normalize."""

    resize_size: int
    crop_size: int
    interpolation: InterpolationMode
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, transforms) -> Preprocessing:
        """From torchvision's ImageClassification preset (a weights enum's `transforms()`)."""
        if isinstance(transforms, Preprocessing):
            return transforms
        return cls(transforms.resize_size[0], transforms.crop_size[0], transforms.interpolation,
                   tuple(transforms.mean), tuple(transforms.std))

    def describe(self) -> str:
        return (f"Resize({self.resize_size}, {self.interpolation.value}, antialias) CenterCrop({self.crop_size}) "
                f"ToTensor Normalize(mean={list(self.mean)}, std={list(self.std)})")


@dataclass
class Backbone:
    """A model mapping uint8 (n, 3, 224, 224) crops to (n, D) float32 features, and its provenance.

    `preprocessing` is the weights' `transforms()`, applied in two halves split at the uint8 crop:
    `transform` (Pillow image -> resized, center-cropped uint8 tensor) runs in the DataLoader
    workers; the conversion to float and the normalization run in `features`, on the device. Same
    torchvision functions, same float32 operations, so the same numbers, with a quarter of the bytes
    through shared memory, pinned memory and PCIe. `attrs` is what goes into the store.
    """

    model: nn.Module
    preprocessing: Preprocessing
    attrs: dict
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    dim: int = FEATURE_DIM
    resize_crop: Callable = field(init=False, repr=False)
    transform: Callable = field(init=False, repr=False)
    normalize: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = self.preprocessing = Preprocessing.of(self.preprocessing)
        self.resize_crop = T.Compose([T.Resize(p.resize_size, interpolation=p.interpolation, antialias=True),
                                      T.CenterCrop(p.crop_size)])
        self.transform = T.Compose([self.resize_crop, T.PILToTensor()])
        self.normalize = T.Compose([T.ConvertImageDtype(torch.float), T.Normalize(p.mean, p.std)])

    @property
    def crop_size(self) -> int:
        return self.preprocessing.crop_size

    def to(self, device: torch.device | str) -> Backbone:
        """Moves the model to `device`; on CUDA also channels-last, cuDNN autotuning, and no TF32 in fp32."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
            # Exact fp32 features: cuDNN would otherwise use TF32 for convolutions on Ampere and later.
            torch.backends.cudnn.allow_tf32 = self.precision != "fp32"
            torch.backends.cuda.matmul.allow_tf32 = self.precision != "fp32"
            torch.backends.cudnn.benchmark = True
        return self

    def features(self, pixels: torch.Tensor) -> np.ndarray:
        """uint8 crops -> normalized on the device -> forward under inference mode (and autocast for
        fp16/bf16); always returns float32."""
        with torch.inference_mode():
            x = self.normalize(pixels.to(self.device, non_blocking=True))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with self._autocast():
                return self.model(x).float().cpu().numpy()

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    def decode_jpegs(self, jpegs: list[torch.Tensor]) -> tuple[list[torch.Tensor | None], list[str | None]]:
        """Decodes JPEG bytes with torchvision.io on the model's device (nvJPEG on CUDA), then preprocesses.

        Returns per image the pixels (or None) and the skip reason (or None). A file the device
        decoder refuses (e.g. CMYK on nvJPEG) falls back to Pillow on the CPU.
        """
        read_mode = torchvision.io.ImageReadMode.RGB
        try:
            decoded = torchvision.io.decode_jpeg(jpegs, mode=read_mode, device=self.device)
        except RuntimeError:
            decoded = []
            for data in jpegs:
                try:
                    decoded.append(torchvision.io.decode_jpeg(data, mode=read_mode, device=self.device))
                except RuntimeError:
                    decoded.append(None)
        pixels, reasons = [], []
        for data, image in zip(jpegs, decoded):
            try:
                if image is None:
                    image = load_rgb(io.BytesIO(data.numpy().tobytes()))
                # A device-decoded image is a uint8 tensor already; a Pillow fallback still needs its tensor.
                pixels.append(self.resize_crop(image) if isinstance(image, torch.Tensor)
                              else self.transform(image).to(self.device))
                reasons.append(None)
            except SkippedImage as skip:
                pixels.append(None)
                reasons.append(str(skip))
        return pixels, reasons


def parse_backbone(spec: str) -> tuple[str, str, str | None]:
    """(family, name, tag) of a spec: `resnet50` -> torchvision; `timm:NAME`; `clip:ARCH[:PRETRAINED]`."""
    family, _, rest = spec.partition(":") if ":" in spec else ("torchvision", "", spec)
    if family not in FAMILIES:
        raise GozError(f"unknown backbone family {family!r} in {spec!r}; a backbone is a torchvision model name "
                       f"(resnet50, vit_b_16, ...), timm:NAME or clip:ARCH[:PRETRAINED]")
    name, _, tag = rest.partition(":")
    if not name:
        raise GozError(f"backbone {spec!r} names no model")
    return family, name, tag or None


def load_backbone(backbone: str = DEFAULT_BACKBONE, *, weights: str | None = None,
                  weights_file: str | Path | None = None, device: str = "cpu", precision: str = "fp32",
                  gpu_decode: bool = False) -> Backbone:
    """The feature extractor `backbone` (see the module doc) on `device` in `precision`.

    `weights` names a torchvision weight set (`imagenet1k_v1`, ...; default: IMAGENET1K_V1 for
    resnet50, the enum's DEFAULT for the others), also the preprocessing; `weights_file` is a local
    state dict (loaded with weights_only=True), for machines without internet or custom weights.
    """
    if precision not in PRECISIONS:
        raise GozError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    torch_device = resolve_device(device)
    family, name, tag = parse_backbone(backbone)
    if weights is not None and family != "torchvision":
        raise GozError(f"--weights names torchvision weight sets; {backbone} takes its weights from its spec "
                       f"or --weights-file")
    model, preprocessing, attrs = FAMILIES[family](name, tag, weights, weights_file)
    model.eval()
    decoder = (f"torchvision.io.decode_jpeg on {torch_device.type} + tensor resize (approximates Pillow)"
               if gpu_decode else "Pillow, convert('RGB'), EXIF orientation not applied")
    dim = attrs.pop("dim")
    attrs |= {
        "dim": dim,
        "preprocessing": preprocessing.describe(),
        "precision": precision,
        "decoder": decoder,
        "torch": str(torch.__version__),  # TorchVersion, a str subclass h5py cannot store
        "torchvision": str(torchvision.__version__),
        "pillow": PIL.__version__,
        "h5py": h5py.__version__,
        "goz": goz.__version__,
    }
    return Backbone(model, preprocessing, attrs, precision=precision, dim=dim).to(torch_device)


# -- torchvision ---------------------------------------------------------------------------------


def _torchvision(name: str, tag: str | None, weights: str | None, weights_file) -> tuple[nn.Module, Preprocessing, dict]:
    models = torchvision.models
    if tag is not None:
        raise GozError(f"torchvision backbone {name}:{tag}: choose its weights with --weights {tag}")
    if name not in models.list_models(module=models):
        raise GozError(f"unknown backbone {name!r}: not a torchvision classification model (e.g. resnet50, "
                       f"resnet101, vit_b_16, efficientnet_b0); timm models are timm:NAME")
    enum = models.get_model_weights(name)
    named = {member.name.lower(): member for member in enum}
    if weights is not None and weights.lower() not in named:
        raise GozError(f"unknown weights {weights!r} for {name}; choose one of {', '.join(named)} "
                       f"(or pass --weights-file PATH)")
    chosen = named[weights.lower()] if weights else (enum.IMAGENET1K_V1 if name == "resnet50" else enum.DEFAULT)
    model = models.get_model(name)
    head, dim = _replace_final_layer(model, name)
    if weights_file is not None:
        path = Path(weights_file).resolve()
        state, digest = _read_weights_file(path), sha256_of(path)
        # Named only when the file is the published one (torchvision's own check: the sha256 prefix in its name).
        published = next((m for m in enum if digest.startswith(_published_hash(m))), None)
        if published is not None and weights is None:
            chosen = published
        weights_name, source = (published.name.lower() if published else "custom"), str(path)
    else:
        state, digest = _download_weights(name, chosen), _cached_sha256(chosen)
        weights_name, source = chosen.name.lower(), chosen.url
    # The final layer's weights are dropped: features stop at its input.
    state = {key: value.float() if value.is_floating_point() else value
             for key, value in state.items() if not key.startswith(head + ".")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise GozError(f"{source}: not a torchvision {name} state dict ({str(error).splitlines()[0]})") from None
    description = ("torchvision.models.resnet50, fc=Identity, 2048-d global average pooled features"
                   if name == "resnet50" else f"torchvision.models.{name}, {head}=Identity, {dim}-d features")
    return model, Preprocessing.of(chosen.transforms()), {
        "backbone": name, "model": description, "weights": weights_name, "weights_source": source,
        "weights_sha256": digest, "preprocessing_of": chosen.name.lower(), "dim": dim}


def _replace_final_layer(model: nn.Module, name: str) -> tuple[str, int]:
    """Replaces the last 1000-way nn.Linear by Identity: (its module path, its input width)."""
    final = [(path, module) for path, module in model.named_modules()
             if isinstance(module, nn.Linear) and module.out_features == 1000]
    if not final:
        raise GozError(f"{name}: no final 1000-way linear layer to take features before; not supported as a backbone")
    path, layer = final[-1]
    parent_path, _, attribute = path.rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, attribute, nn.Identity())
    return path, layer.in_features


def _published_hash(weights) -> str:
    match = re.search(r"-([0-9a-f]{8,64})\.pth$", weights.url)
    return match.group(1) if match else "no published hash"


def _cached_sha256(weights) -> str:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    return sha256_of(cached) if cached.is_file() else _published_hash(weights)


def _read_weights_file(path: Path) -> dict:
    if not path.is_file():
        raise GozError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or others on a bad file
        raise GozError(f"{path}: not a loadable torch state dict ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    fix = "save the model's state_dict(), a mapping of parameter names to tensors"
    if not isinstance(state, dict):
        raise GozError(f"{path}: holds a value of type {type(state).__name__}, not a state dict; {fix}")
    for key, value in state.items():
        if not isinstance(key, str):
            raise GozError(f"{path}: not a state dict: key {key!r} ({type(key).__name__}) is not a parameter "
                           f"name; {fix}")
        if not isinstance(value, torch.Tensor):
            raise GozError(f"{path}: not a state dict: the value of {key!r} is of type {type(value).__name__}, "
                           f"not a tensor; {fix}")
    return state


def _download_weights(name: str, spec) -> dict:
    try:
        return spec.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / spec.url.rsplit("/", 1)[-1]
        label = "ResNet-50" if name == "resnet50" else name
        raise GozError(
            f"could not get the {label} weights {spec.name.lower()} from {spec.url} ({error}). "
            f"On a machine without internet, download that file elsewhere and either pass "
            f"--weights-file PATH (with --weights {spec.name.lower()} for its preprocessing) or copy it to {cache}"
        ) from None


# -- timm ----------------------------------------------------------------------------------------


def _timm(name: str, tag: str | None, weights: str | None, weights_file) -> tuple[nn.Module, Preprocessing, dict]:
    try:
        import timm
        import timm.data
    except ImportError:
        raise GozError("timm backbones need timm: pip install timm") from None
    full = f"{name}.{tag}" if tag else name
    if not timm.is_model(name.split(".")[0]):
        raise GozError(f"unknown timm model {name!r} (see timm.list_models())")
    try:
        model = timm.create_model(full, pretrained=weights_file is None)
    except Exception as error:  # hub download or config errors: offline machines land here
        raise GozError(f"could not create timm:{full} with its pretrained weights ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''}); on a machine without internet pass "
                       f"--weights-file PATH (a state dict of this model)") from None
    classifier = model.pretrained_cfg.get("classifier", "")
    model.reset_classifier(0)
    cfg = model.pretrained_cfg
    if weights_file is not None:
        path = Path(weights_file).resolve()
        state = {k: v for k, v in _read_weights_file(path).items()
                 if not (classifier and k.startswith(classifier + "."))}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise GozError(f"{path}: not a timm {name} state dict ({str(error).splitlines()[0]})") from None
        weights_name, source, digest = "custom", str(path), sha256_of(path)
    else:
        weights_name = f"{cfg.get('architecture', name)}.{cfg.get('tag', '')}".rstrip(".")
        source, digest = cfg.get("hf_hub_id") or cfg.get("url", ""), ""
    config = timm.data.resolve_data_config({}, model=model)
    if config.get("crop_mode", "center") != "center":
        raise GozError(f"timm:{name}: crop mode {config['crop_mode']!r} is not supported (center crops only)")
    size = config["input_size"][-1]
    preprocessing = Preprocessing(math.floor(size / config["crop_pct"]), size,
                                  InterpolationMode(config["interpolation"]), tuple(config["mean"]), tuple(config["std"]))
    return model, preprocessing, {
        "backbone": f"timm:{full}", "model": f"timm {full} {timm.__version__}, classifier reset, "
                                            f"{model.num_features}-d pooled features",
        "weights": weights_name, "weights_source": source, "weights_sha256": digest, "dim": model.num_features}


# -- open_clip -----------------------------------------------------------------------------------


class _ClipImageTower(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)  # what open_clip's encode_image(normalize=False) returns


def _clip(arch: str, tag: str | None, weights: str | None, weights_file) -> tuple[nn.Module, Preprocessing, dict]:
    import open_clip  # create_clip_model has said so if it is missing

    clip_weights = parse_clip_spec(f"clip:{arch}" + (f":{tag}" if tag else ""), weights_file)
    model = create_clip_model(clip_weights)
    spec = clip_weights.spec
    if clip_weights.checkpoint is not None:
        weights_name, source, digest = "custom", str(clip_weights.checkpoint), spec.split("sha256=", 1)[1]
    elif clip_weights.tag:
        weights_name, source, digest = clip_weights.tag, f"open_clip pretrained {clip_weights.tag}", ""
    else:
        weights_name, source, digest = f"random-init (torch seed {CLIP_SEED})", "none", ""
    cfg = open_clip.get_model_preprocess_cfg(model)
    if cfg.get("resize_mode", "shortest") != "shortest":
        raise GozError(f"clip:{arch}: resize mode {cfg['resize_mode']!r} is not supported (shortest side only)")
    size = cfg["size"] if isinstance(cfg["size"], int) else cfg["size"][0]
    preprocessing = Preprocessing(size, size, InterpolationMode(cfg.get("interpolation", "bicubic")),
                                  tuple(cfg["mean"]), tuple(cfg["std"]))
    tower = _ClipImageTower(model.visual).eval()
    with torch.inference_mode():
        dim = int(tower(torch.zeros(1, 3, size, size)).shape[1])
    return tower, preprocessing, {
        "backbone": spec, "model": f"open_clip {arch} {open_clip.__version__} image tower, encode_image "
                                   f"(projected, not L2-normalized), {dim}-d",
        "weights": weights_name, "weights_source": source, "weights_sha256": digest, "dim": dim}


FAMILIES: dict[str, Callable[..., tuple[nn.Module, Preprocessing, dict]]] = {
    "torchvision": _torchvision, "timm": _timm, "clip": _clip}
