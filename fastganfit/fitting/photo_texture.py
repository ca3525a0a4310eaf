"""Photo UV textures for a reconstruction graph: the extractor built from the graph's own face model, camera,
lighting and rasteriser, at its texture model's resolution; sharper crops of the photos to take colours from; and
the fit-quality numbers of a fitted batch."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from fastganfit.perception.crop import warp_image
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.texture.photo_uv import PhotoTextureExtractor

MAX_DETAIL_SCALE = 4


LIGHT_MODES = ("colour", "brightness")


def photo_texture_extractor(
    graph: FaceReconstructionGraph, resolution: int | None = None, light: str = "colour"
) -> PhotoTextureExtractor:
    """A :class:`PhotoTextureExtractor` for ``graph`` on its device; ``resolution`` defaults to the texture model's.
    ``light``: divide out the fitted light's ``colour`` and brightness, or its ``brightness`` only."""
    if light not in LIGHT_MODES:
        raise ValueError(f"photo texture light must be one of {LIGHT_MODES}, got {light!r}")
    renderer = graph.renderer
    side = int(resolution or graph.texture.resolution)
    extractor = PhotoTextureExtractor(graph.model, renderer.camera, renderer.lighting, side,
                                      light_colour=light == "colour", backend=renderer.backend)  # fmt: skip
    return extractor.to(graph.device)


def detail_scale(resolution: int, crop_size: int) -> int:
    """How many times larger than the crop the photo is re-cropped for a UV map of side ``resolution``: about two
    photo pixels per texel across (the face spans about half of both), at most :data:`MAX_DETAIL_SCALE`."""
    return max(1, min(MAX_DETAIL_SCALE, math.ceil(2 * resolution / crop_size)))


def detail_crops(photos: Sequence[np.ndarray], transforms: Sequence[np.ndarray], crop_size: int, scale: int) -> Tensor:
    """The aligned crops of uint8 ``photos`` ``[H, W, 3]`` (``transforms [2, 3]``: photo -> crop pixels) at ``scale``
    times the crop size, ``[B, 3, scale S, scale S]`` in [0, 1]: detail pixel ``p`` is crop pixel ``(p + 0.5) / scale
    - 0.5``, so the camera parameters fitted on the crops project onto them unchanged (they do not depend on the
    image size)."""
    crops = []
    for photo, transform in zip(photos, transforms, strict=True):
        scaled = np.asarray(transform, np.float64) * scale
        scaled[:, 2] += (scale - 1) / 2.0
        crops.append(torch.from_numpy(warp_image(photo, scaled, crop_size * scale).copy()))
    return torch.stack(crops).permute(0, 3, 1, 2).float() / 255.0


def coverage_fraction(confidence: Tensor, extractor: PhotoTextureExtractor) -> float:
    """The fraction of the face model's UV map that ``confidence [..., 1, R, R]`` covers (confidence-weighted)."""
    return float(confidence.mean() / extractor.coverage.mean())


def photometric_error(image: Tensor, render: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute colour difference ``[B]`` between ``image`` and ``render [B, 3, H, W]`` over ``mask [B, 1, H, W]``
    (in [0, 1] units; 1 where nothing is drawn)."""
    covered = mask.sum((1, 2, 3))
    error = ((image - render).abs().mean(1, keepdim=True) * mask).sum((1, 2, 3)) / covered.clamp(min=1.0)
    return error.where(covered > 0, error.new_ones(()))
