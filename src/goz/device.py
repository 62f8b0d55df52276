"""Which torch device a computation runs on: the one check every stage shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from goz.errors import GozError

if TYPE_CHECKING:
    import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """`torch.device(device)`, with a clear error when CUDA is asked for but missing."""
    import torch  # deferred: the lowest layer stays importable without loading torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise GozError(f"not a torch device: {device!r} ({error})") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GozError(f"device {device!r} was asked for but CUDA is not available to torch {torch.__version__}; "
                       "use device='cpu'")
    return resolved
