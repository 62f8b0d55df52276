"""The feature extractor: torchvision's ResNet-50 up to its 2048-d global-average-pooled output.

The GOZ features came from `resnet50(pretrained=True)` (torchvision's IMAGENET1K_V1 weights) with
Resize(256) / CenterCrop(224) / ImageNet mean and std; the weights' own `transforms()` are exactly
that (bilinear, antialiased resize of the Pillow image), so they are used rather than re-written.
"""

from __future__ import annotations

import contextlib
import io
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
from torchvision.models import ResNet50_Weights, resnet50
from torchvision.transforms._presets import ImageClassification

import goz
from goz.errors import GozError
from goz.extract.dataset import SkippedImage, load_rgb
from goz.home import sha256_of

WEIGHTS = {"imagenet1k_v1": ResNet50_Weights.IMAGENET1K_V1, "imagenet1k_v2": ResNet50_Weights.IMAGENET1K_V2}
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FEATURE_DIM = 2048
# Store attributes that must agree before new classes may join an existing store.
COMPATIBILITY_KEYS = ("model", "weights", "weights_sha256", "preprocessing", "precision", "decoder")


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
    preprocessing: ImageClassification
    attrs: dict
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"
    channels_last: bool = False
    dim: int = FEATURE_DIM
    resize_crop: Callable = field(init=False, repr=False)
    transform: Callable = field(init=False, repr=False)
    normalize: Callable = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p = self.preprocessing
        self.resize_crop = T.Compose([T.Resize(p.resize_size, interpolation=p.interpolation, antialias=p.antialias),
                                      T.CenterCrop(p.crop_size)])
        self.transform = T.Compose([self.resize_crop, T.PILToTensor()])
        self.normalize = T.Compose([T.ConvertImageDtype(torch.float), T.Normalize(p.mean, p.std)])

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


def load_backbone(weights: str = "imagenet1k_v1", weights_file: str | Path | None = None, *,
                  device: str = "cpu", precision: str = "fp32", gpu_decode: bool = False) -> Backbone:
    """ResNet-50 with fc replaced by Identity, its preprocessing, on `device` in `precision`.

    `weights` names torchvision weights (and their preprocessing); `weights_file` is a torchvision
    state dict on disk (loaded with weights_only=True) for machines without internet.
    """
    if weights not in WEIGHTS:
        raise GozError(f"unknown weights {weights!r}; choose one of {', '.join(WEIGHTS)} "
                       f"(or pass --weights-file PATH)")
    if precision not in PRECISIONS:
        raise GozError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    try:
        torch_device = torch.device(device)
    except RuntimeError as error:
        raise GozError(f"bad device {device!r}: {error}") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise GozError(f"device {device!r} requested but CUDA is not available on this machine")
    spec = WEIGHTS[weights]
    with torch.device("meta"):  # every parameter comes from the state dict: skip the random initialization
        model = resnet50()
    model.fc = nn.Identity()
    if weights_file is not None:
        path = Path(weights_file).resolve()
        state, source, digest = _read_weights_file(path), str(path), sha256_of(path)
    else:
        state, source, digest = _download_weights(weights, spec), spec.url, spec.url.rsplit("-", 1)[-1].split(".")[0]
    # The fc layer's weights are dropped: features stop at the pooled 2048-d output.
    state = {key: value.float() if value.is_floating_point() else value
             for key, value in state.items() if not key.startswith("fc.")}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:
        raise GozError(f"{source}: not a torchvision ResNet-50 state dict ({str(error).splitlines()[0]})") from None
    model.eval()
    transform = spec.transforms()
    decoder = (f"torchvision.io.decode_jpeg on {torch_device.type} + tensor resize (approximates Pillow)"
               if gpu_decode else "Pillow, convert('RGB'), EXIF orientation not applied")
    attrs = {
        "model": "torchvision.models.resnet50, fc=Identity, 2048-d global average pooled features",
        "weights": weights,
        "weights_source": source,
        "weights_sha256": digest,
        "preprocessing": (f"Resize({transform.resize_size[0]}, {transform.interpolation.value}, antialias) "
                          f"CenterCrop({transform.crop_size[0]}) ToTensor Normalize(mean={transform.mean}, "
                          f"std={transform.std})"),
        "precision": precision,
        "decoder": decoder,
        "torch": str(torch.__version__),  # TorchVersion, a str subclass h5py cannot store
        "torchvision": str(torchvision.__version__),
        "pillow": PIL.__version__,
        "h5py": h5py.__version__,
        "goz": goz.__version__,
    }
    return Backbone(model, transform, attrs, precision=precision).to(torch_device)


def _read_weights_file(path: Path) -> dict:
    if not path.is_file():
        raise GozError(f"{path}: no such weights file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError or others on a bad file
        raise GozError(f"{path}: not a loadable torch state dict ({type(error).__name__}: "
                       f"{str(error).splitlines()[0] if str(error) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise GozError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def _download_weights(name: str, spec: ResNet50_Weights) -> dict:
    try:
        return spec.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as error:
        cache = Path(torch.hub.get_dir()) / "checkpoints" / spec.url.rsplit("/", 1)[-1]
        raise GozError(
            f"could not get the ResNet-50 weights {name} from {spec.url} ({error}). "
            f"On a machine without internet, download that file elsewhere and either pass "
            f"--weights-file PATH (with --weights {name} for its preprocessing) or copy it to {cache}"
        ) from None
