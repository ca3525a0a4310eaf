"""Colour errors of reconstructions: albedo and render delta-E in CIELAB, and the light's chroma error.

* :func:`albedo_delta_e`: mean CIEDE2000 difference (``skimage.color.deltaE_ciede2000``) between a predicted and
  a ground-truth UV albedo over the front skin texels (:func:`front_skin_texels`). A delta-E of about 2.3 is
  a just-noticeable difference; 10 is a clearly different skin tone.
* :func:`light_chroma_error`: how far the predicted light's colour is from the true one, intensity aside:
  ``100 ||c_p / mean(c_p) - c_t / mean(c_t)||_2`` (percent) with ``c`` the mean colour the light gives a white
  surface over the front hemisphere of normals (:func:`~fastganfit.render.lighting.light_colour`).
* :func:`masked_delta_e`: mean delta-E between two images over a mask (the render against the photo over the
  rendered face, for photos without ground truth); :func:`visible_skin_texels` the UV skin compared on photos.
* :func:`chroma`, :func:`lightness`, :func:`hue`, :func:`light_chroma`: a picture's skin chroma, lightness and hue,
  a light's tint.

Images and textures are display (sRGB) values in [0, 1], as the renderer and the texture models produce them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from skimage.color import deltaE_ciede2000, rgb2lab
from torch import Tensor

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.render.lighting import light_tint
from fastganfit.texture.procedural import ProceduralTexture
from fastganfit.texture.uv_layout import rasterize_uv_layout

#: Front skin texels: the procedural skin region's weight above this (lips, brows and eyes excluded).
SKIN_THRESHOLD = 0.5
#: The visible skin ends this far (mm, mean face) above the brows: higher up, hair often covers the forehead.
HAIRLINE_MM = 20.0


def delta_e(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """CIEDE2000 difference ``[...]`` of two sRGB colour arrays ``[..., 3]`` in [0, 1]."""
    if first.shape != second.shape or first.shape[-1] != 3:
        raise ValueError(f"delta_e: expected two [..., 3] colour arrays, got {first.shape} and {second.shape}")
    lab = rgb2lab(np.clip(np.stack([first, second]), 0.0, 1.0), channel_axis=-1)
    return deltaE_ciede2000(lab[0], lab[1], channel_axis=-1)


def masked_delta_e(predicted: Tensor, target: Tensor, mask: Tensor) -> np.ndarray:
    """Mean delta-E ``[B]`` of ``predicted`` against ``target`` (both ``[B, 3, H, W]`` in [0, 1]) over the pixels
    where ``mask [B, 1, H, W]`` (or ``[1, 1, H, W]``) exceeds 0.5; NaN where it covers nothing."""
    if predicted.shape != target.shape or predicted.ndim != 4 or predicted.shape[1] != 3:
        raise ValueError(f"masked_delta_e: expected two [B, 3, H, W] images, got {list(predicted.shape)} and "
                         f"{list(target.shape)}")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != predicted.shape[2:]:
        raise ValueError(f"masked_delta_e: mask must be [B, 1, {predicted.shape[2]}, {predicted.shape[3]}], "
                         f"got {list(mask.shape)}")
    covered = (mask > 0.5).expand(predicted.shape[0], 1, *predicted.shape[2:])[:, 0].cpu().numpy()
    differences = delta_e(predicted.detach().permute(0, 2, 3, 1).cpu().double().numpy(),
                          target.detach().permute(0, 2, 3, 1).cpu().double().numpy())
    return np.array([row[inside].mean() if inside.any() else math.nan
                     for row, inside in zip(differences, covered, strict=True)])


def front_skin_texels(texture: ProceduralTexture) -> Tensor:
    """``[1, 1, R, R]`` bool: texels of the procedural texture's skin region (lips, brows and eye regions left out)
    on the front of the face (ears, neck and scalp left out): the skin a frontal or turned face shows."""
    return (texture.masks[0:1] > SKIN_THRESHOLD) & (texture.front > 0.5)


def visible_skin_texels(texture: ProceduralTexture, model: MorphableModel) -> Tensor:
    """``[1, 1, R, R]`` bool: :func:`front_skin_texels` below the hairline (mean-face height less than
    :data:`HAIRLINE_MM` above the brows), the skin a photo shows uncovered by hair."""
    layout = rasterize_uv_layout(model, texture.resolution)
    brows = model.mean[model.landmark_indices][17:27, 1].mean()
    below = (layout.positions[1] < brows + HAIRLINE_MM).view_as(texture.front)
    return front_skin_texels(texture) & below.to(texture.front.device)


def _median_in_mask(images: Tensor, mask: Tensor, quantity: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per image the median of ``quantity(lab) [B, H, W]`` (``lab``: CIELAB ``[B, H, W, 3]`` of ``images [B, 3, H,
    W]``) over ``mask [B, 1, H, W]`` above 0.5; NaN where the mask is empty -> ``[B]``."""
    lab = rgb2lab(images.detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().double().numpy(), channel_axis=-1)
    inside = (mask[:, 0] > 0.5).expand(images.shape[0], *images.shape[2:]).cpu().numpy()
    return np.array([np.median(row[where]) if where.any() else math.nan
                     for row, where in zip(quantity(lab), inside, strict=True)])  # fmt: skip


def chroma(images: Tensor, mask: Tensor) -> np.ndarray:
    """Median CIELAB chroma ``sqrt(a*^2 + b*^2)`` ``[B]`` of ``images [B, 3, H, W]`` over ``mask [B, 1, H, W]``."""
    return _median_in_mask(images, mask, lambda lab: np.hypot(lab[..., 1], lab[..., 2]))


def lightness(images: Tensor, mask: Tensor) -> np.ndarray:
    """Median CIELAB lightness ``L*`` ``[B]`` of ``images [B, 3, H, W]`` over ``mask [B, 1, H, W]``."""
    return _median_in_mask(images, mask, lambda lab: lab[..., 0])


def hue(images: Tensor, mask: Tensor) -> np.ndarray:
    """Median CIELAB hue angle ``atan2(b*, a*)`` in degrees ``[B]`` of ``images [B, 3, H, W]`` over ``mask [B, 1, H,
    W]`` (skin lies at about 30-80 degrees, from red towards yellow, so the angle does not wrap)."""
    return _median_in_mask(images, mask, lambda lab: np.degrees(np.arctan2(lab[..., 2], lab[..., 1])))


def light_chroma(lighting: torch.nn.Module, light: Tensor) -> np.ndarray:
    """``[B]`` percent, as numbers: :func:`~fastganfit.render.lighting.light_tint` (0 for a white light)."""
    return light_tint(lighting, light).detach().cpu().numpy()


def albedo_delta_e(predicted: Tensor, truth: Tensor, texels: Tensor) -> np.ndarray:
    """Mean delta-E ``[B]`` of a predicted UV albedo ``[B, 3, R', R']`` (resized to the truth's resolution) against
    the ground truth ``[B, 3, R, R]`` over ``texels [1, 1, R, R]`` (:func:`front_skin_texels`)."""
    if predicted.shape[-2:] != truth.shape[-2:]:
        predicted = F.interpolate(predicted, size=truth.shape[-2:], mode="bilinear", align_corners=False)
    return masked_delta_e(predicted.clamp(0, 1), truth, texels.to(truth.device))


def light_chroma_error(predicted: Tensor, truth: Tensor) -> np.ndarray:
    """``[B]`` percent: ``100 ||c_p / mean(c_p) - c_t / mean(c_t)||_2`` of light colours ``[B, 3]``
    (:func:`~fastganfit.render.lighting.light_colour`); 0 when the two lights differ only in intensity."""
    if predicted.shape != truth.shape or predicted.ndim != 2 or predicted.shape[1] != 3:
        raise ValueError(f"light_chroma_error: expected two [B, 3] colours, got {list(predicted.shape)} and "
                         f"{list(truth.shape)}")

    def relative(colour: Tensor) -> Tensor:
        return colour / colour.mean(dim=1, keepdim=True).clamp(min=1e-6)

    return (100.0 * torch.linalg.vector_norm(relative(predicted) - relative(truth), dim=1)).detach().cpu().numpy()
