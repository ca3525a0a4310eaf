"""The render of a fitted face pasted back onto the whole photo (through the inverse of the crop transform)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def paste_render(photo: np.ndarray, render: np.ndarray, mask: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """``photo`` uint8 ``[H, W, 3]`` with ``render`` uint8 ``[S, S, 3]`` drawn where ``mask`` ``[S, S]`` (in
    [0, 1]) covers it; ``transform`` ``[2, 3]`` maps photo pixels to crop pixels (the crop's ``crop_transform``).

    The render and its mask are resampled bilinearly into the photo; returns a new uint8 ``[H, W, 3]``.
    """
    height, width = photo.shape[:2]
    alpha = (np.clip(mask, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    rgba = Image.fromarray(np.dstack([render, alpha]), mode="RGBA")
    # PIL samples input(x_pil) = A (output_pil - 0.5) + t + 0.5 with pixel centres at +0.5 on both sides
    linear, shift = np.asarray(transform, np.float64)[:, :2], np.asarray(transform, np.float64)[:, 2]
    pil_shift = shift + 0.5 - linear @ np.array([0.5, 0.5])
    coefficients = (linear[0, 0], linear[0, 1], pil_shift[0], linear[1, 0], linear[1, 1], pil_shift[1])
    warped = rgba.transform(
        (width, height), Image.Transform.AFFINE, coefficients, resample=Image.Resampling.BILINEAR,
        fillcolor=(0, 0, 0, 0),
    )  # fmt: skip
    layer = np.asarray(warped, dtype=np.float32)
    weight = layer[..., 3:] / 255.0
    blended = photo.astype(np.float32) * (1.0 - weight) + layer[..., :3] * weight
    return np.clip(blended.round(), 0, 255).astype(np.uint8)
