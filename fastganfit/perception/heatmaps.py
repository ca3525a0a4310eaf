"""Landmark heatmaps ``[B, 68, 64, 64]`` in the aligned crop's frame, the regressor's second input.

Heatmap pixel (row v, column u) covers the crop the way a ``heatmap_size`` image resized from the
``crop_size`` crop would: its centre is at crop pixel ``x = (u + 0.5) * crop_size / heatmap_size - 0.5``
(likewise y). Two sources behind one interface, :class:`HeatmapSource` ``(images [B, 3, S, S],
landmarks [B, 68, 2]) -> [B, 68, h, h]``:

* :class:`GaussianHeatmaps`: a Gaussian of ``sigma`` heatmap pixels at each landmark (peak 1 at the
  landmark, differentiable in the landmarks); uses only the landmarks.
* :class:`FANHeatmaps`: FAN's own heatmaps of the crop, resampled into the crop's frame; uses only the
  images (needs face-alignment's 2D-FAN-4 weights, see :mod:`fastganfit.perception.landmarks`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fastganfit.perception.crop import DEFAULT_CROP_SIZE, invert_transform
from fastganfit.perception.face_chip import sample_chips
from fastganfit.perception.landmarks import (
    FAN_INPUT_SIZE,
    NUM_LANDMARKS,
    FANPredictor,
    compose,
    fan_box_frame,
    fan_heatmap_frame,
    load_fan,
)

DEFAULT_HEATMAP_SIZE = 64


def crop_to_heatmap(
    points: Tensor, crop_size: int = DEFAULT_CROP_SIZE, heatmap_size: int = DEFAULT_HEATMAP_SIZE
) -> Tensor:
    """Crop pixels ``[..., 2]`` -> heatmap pixels ``[..., 2]``."""
    return (points + 0.5) * (heatmap_size / crop_size) - 0.5


def heatmap_to_crop(
    points: Tensor, crop_size: int = DEFAULT_CROP_SIZE, heatmap_size: int = DEFAULT_HEATMAP_SIZE
) -> Tensor:
    """Heatmap pixels ``[..., 2]`` -> crop pixels ``[..., 2]``."""
    return (points + 0.5) * (crop_size / heatmap_size) - 0.5


def gaussian_heatmaps(
    landmarks: Tensor, crop_size: int = DEFAULT_CROP_SIZE, heatmap_size: int = DEFAULT_HEATMAP_SIZE, sigma: float = 1.5
) -> Tensor:
    """Gaussian heatmaps ``[B, K, heatmap_size, heatmap_size]`` of landmarks ``[B, K, 2]`` in crop pixels.

    Each is ``exp(-d^2 / (2 sigma^2))`` with ``d`` the distance (in heatmap pixels) from the pixel centre
    to the landmark: 1 at the landmark, differentiable in the landmarks.
    """
    if landmarks.ndim != 3 or landmarks.shape[-1] != 2:
        raise ValueError(f"landmarks: expected [B, K, 2] crop pixels, got shape {list(landmarks.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive (heatmap pixels), got {sigma}")
    points = crop_to_heatmap(landmarks, crop_size, heatmap_size)
    grid = torch.arange(heatmap_size, device=landmarks.device, dtype=landmarks.dtype)
    gx = torch.exp(-((grid - points[..., 0:1]) ** 2) / (2 * sigma**2))
    gy = torch.exp(-((grid - points[..., 1:2]) ** 2) / (2 * sigma**2))
    return gy[..., :, None] * gx[..., None, :]


class HeatmapSource(nn.Module, ABC):
    """``(images [B, 3, S, S] in [0, 1], landmarks [B, 68, 2] crop pixels) -> heatmaps [B, 68, h, h]``,
    with ``S = crop_size`` and ``h = heatmap_size``; a source may ignore either input."""

    def __init__(self, crop_size: int = DEFAULT_CROP_SIZE, heatmap_size: int = DEFAULT_HEATMAP_SIZE) -> None:
        super().__init__()
        if crop_size < 1 or heatmap_size < 1:
            raise ValueError(f"crop_size and heatmap_size must be positive, got {crop_size} and {heatmap_size}")
        self.crop_size = crop_size
        self.heatmap_size = heatmap_size

    @abstractmethod
    def forward(self, images: Tensor, landmarks: Tensor) -> Tensor:
        """Heatmaps ``[B, 68, heatmap_size, heatmap_size]``."""


class GaussianHeatmaps(HeatmapSource):
    """Heatmaps rendered from the landmarks (:func:`gaussian_heatmaps`); the images are not used."""

    def __init__(
        self, crop_size: int = DEFAULT_CROP_SIZE, heatmap_size: int = DEFAULT_HEATMAP_SIZE, sigma: float = 1.5
    ) -> None:
        super().__init__(crop_size, heatmap_size)
        if sigma <= 0:
            raise ValueError(f"sigma must be positive (heatmap pixels), got {sigma}")
        self.sigma = sigma

    def forward(self, images: Tensor, landmarks: Tensor) -> Tensor:
        if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_LANDMARKS, 2):
            raise ValueError(f"landmarks: expected [B, 68, 2] crop pixels, got shape {list(landmarks.shape)}")
        return gaussian_heatmaps(landmarks, self.crop_size, self.heatmap_size, self.sigma)


def template_fan_frame(template: np.ndarray) -> np.ndarray:
    """``[2, 3]`` map from FAN input pixels to crop pixels, framed on the box of the crop ``template`` ``[68, 2]``."""
    low, high = template.min(axis=0), template.max(axis=0)
    return fan_box_frame(np.concatenate([low - 0.5, high + 0.5]))


class FANHeatmaps(HeatmapSource):
    """FAN's heatmaps of aligned crops, in the crop's frame; the landmarks are not used. Not differentiable.

    Every crop is aligned to the same template, so FAN sees one fixed window of it: the window FAN would
    frame on a box around ``template`` (default :func:`fastganfit.data.schema.crop_template`). FAN's 64x64
    heatmaps of that window are resampled (bilinear) onto the crop's heatmap grid; outside the window they
    are 0. ``weights`` / ``flip``: see :class:`~fastganfit.perception.landmarks.FANLandmarker`;
    ``predictor`` replaces the network loaded from ``weights``.
    """

    def __init__(
        self,
        weights: str | Path | None = None,
        crop_size: int = DEFAULT_CROP_SIZE,
        heatmap_size: int = DEFAULT_HEATMAP_SIZE,
        flip: bool = True,
        template: np.ndarray | Tensor | None = None,
        predictor: FANPredictor | None = None,
    ) -> None:
        super().__init__(crop_size, heatmap_size)
        self.predictor = predictor if predictor is not None else FANPredictor(load_fan(weights), flip)
        if template is None:
            from fastganfit.perception.crop_template import crop_template  # the face model is loaded only when needed

            template = crop_template(crop_size)
        points = template.detach().cpu().double().numpy() if isinstance(template, Tensor) else np.asarray(template)
        if points.shape != (NUM_LANDMARKS, 2):
            raise ValueError(f"template: expected [68, 2] crop pixels, got shape {list(points.shape)}")
        fan_to_crop = template_fan_frame(points)
        scale = crop_size / heatmap_size
        heatmap_to_crop_frame = np.array([[scale, 0.0, 0.5 * scale - 0.5], [0.0, scale, 0.5 * scale - 0.5]])
        crop_heatmap_to_fan_heatmap = compose(
            invert_transform(fan_heatmap_frame()), compose(invert_transform(fan_to_crop), heatmap_to_crop_frame)
        )
        self.register_buffer("fan_to_crop", torch.from_numpy(fan_to_crop).float(), persistent=False)
        self.register_buffer(
            "crop_heatmap_to_fan", torch.from_numpy(crop_heatmap_to_fan_heatmap).float(), persistent=False
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FANHeatmaps:
        """Stay in eval mode whatever ``mode`` is."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: Tensor, landmarks: Tensor | None = None) -> Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, self.crop_size, self.crop_size):
            raise ValueError(
                f"images: expected aligned crops [B, 3, {self.crop_size}, {self.crop_size}], got {list(images.shape)}"
            )
        batch = images.shape[0]
        inputs = sample_chips(images.float(), self.fan_to_crop.expand(batch, 2, 3), FAN_INPUT_SIZE)
        heatmaps = self.predictor(inputs)
        resampled = sample_chips(heatmaps, self.crop_heatmap_to_fan.expand(batch, 2, 3), self.heatmap_size)
        return resampled.to(images.dtype)


__all__ = [
    "FANHeatmaps",
    "GaussianHeatmaps",
    "HeatmapSource",
    "crop_to_heatmap",
    "gaussian_heatmaps",
    "heatmap_to_crop",
]
