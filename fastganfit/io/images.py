"""Image files: tensors to 8-bit images and PNG, image grids, all written atomically."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from fastganfit.io.atomic import atomic_write


def image_to_uint8(image: torch.Tensor | np.ndarray, name: str = "image") -> np.ndarray:
    """An ``[H, W, 3]`` uint8 image from a float ``[3, H, W]`` in [0, 1] (clipped) or a uint8 ``[H, W, 3]``.

    ``name`` names the input in error messages.
    """
    array = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.dtype == np.uint8:
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"{name}: a uint8 {name} must be [H, W, 3], got {list(array.shape)}")
        return np.ascontiguousarray(array)
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected float [3, H, W] in [0, 1] or uint8 [H, W, 3], got {array.dtype}")
    if array.ndim != 3 or array.shape[0] != 3:
        raise ValueError(f"{name}: a float {name} must be [3, H, W], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return np.ascontiguousarray((np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8).transpose(1, 2, 0))


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of a uint8 ``[H, W, 3]`` image."""
    buffer = io.BytesIO()
    Image.fromarray(image, mode="RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def save_png(image: torch.Tensor | np.ndarray, path: str | Path) -> Path:
    """Write ``image`` (float ``[3, H, W]`` in [0, 1] or uint8 ``[H, W, 3]``) to ``path`` as PNG, atomically."""
    data = png_bytes(image_to_uint8(image))
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def save_grid(images: torch.Tensor, path: str | Path, columns: int = 4, padding: int = 2) -> Path:
    """Tile ``images [B, 3, H, W]`` into a grid with ``columns`` columns and write it as PNG."""
    if images.ndim != 4:
        raise ValueError(f"images: expected [B, 3, H, W], got {list(images.shape)}")
    grid = make_grid(images.detach().float().cpu(), nrow=columns, padding=padding, pad_value=1.0)
    return save_png(grid, path)
