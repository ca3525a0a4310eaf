"""Overlays for visual checks: 68 iBUG landmarks drawn on images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from fastganfit.io.images import image_to_uint8, save_grid

# iBUG-68 contours: (first, last, closed) index ranges joined by lines.
IBUG_CONTOURS = (
    (0, 16, False),  # jaw
    (17, 21, False),  # right brow
    (22, 26, False),  # left brow
    (27, 30, False),  # nose bridge
    (31, 35, False),  # nostrils
    (36, 41, True),  # right eye
    (42, 47, True),  # left eye
    (48, 59, True),  # outer lips
    (60, 67, True),  # inner lips
)


def draw_landmarks(
    image: torch.Tensor | np.ndarray,
    landmarks: torch.Tensor | np.ndarray,
    colour: tuple[int, int, int] = (40, 230, 60),
    hidden_colour: tuple[int, int, int] = (240, 60, 40),
    visible: torch.Tensor | np.ndarray | None = None,
    radius: float = 1.5,
    lines: bool = True,
) -> np.ndarray:
    """``image`` (float ``[3, H, W]`` in [0, 1] or uint8 ``[H, W, 3]``) with ``landmarks [L, 2]`` drawn on it.

    Landmarks are pixel coordinates (x, y) with pixel centres at integers. When ``L`` is 68 and
    ``lines``, the iBUG contours are joined. Points with ``visible`` false are drawn in ``hidden_colour``.
    Returns a new uint8 ``[H, W, 3]`` image.
    """
    rgb = image_to_uint8(image, name="image")
    points = landmarks.detach().cpu().numpy() if isinstance(landmarks, torch.Tensor) else np.asarray(landmarks)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"landmarks: expected [L, 2], got {list(points.shape)}")
    if visible is None:
        shown = np.ones(len(points), dtype=bool)
    else:
        shown = np.asarray(visible.detach().cpu() if isinstance(visible, torch.Tensor) else visible, dtype=bool)
        if shown.shape != (len(points),):
            raise ValueError(f"visible: expected [{len(points)}], got {list(shown.shape)}")
    canvas = Image.fromarray(rgb)
    draw = ImageDraw.Draw(canvas)
    if lines and len(points) == 68:
        for first, last, closed in IBUG_CONTOURS:
            chain = [tuple(point) for point in points[first : last + 1].tolist()]
            draw.line(chain + chain[:1] if closed else chain, fill=colour, width=1)
    for (x, y), seen in zip(points.tolist(), shown, strict=True):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour if seen else hidden_colour)
    return np.asarray(canvas).copy()


def save_landmark_grid(
    images: torch.Tensor,
    landmarks: torch.Tensor,
    path: str | Path,
    visible: torch.Tensor | None = None,
    columns: int = 4,
) -> Path:
    """Draw ``landmarks [B, L, 2]`` on ``images [B, 3, H, W]`` (float in [0, 1]) and save them as a PNG grid.

    ``visible [B, L]`` (bool, optional) draws hidden landmarks in another colour. Written atomically.
    """
    if images.ndim != 4 or landmarks.ndim != 3 or images.shape[0] != landmarks.shape[0]:
        raise ValueError(
            f"expected images [B, 3, H, W] and landmarks [B, L, 2], got {list(images.shape)} and "
            f"{list(landmarks.shape)}"
        )
    drawn = [
        draw_landmarks(image, points, visible=None if visible is None else visible[index])
        for index, (image, points) in enumerate(zip(images, landmarks, strict=True))
    ]
    tiles = torch.from_numpy(np.stack(drawn)).permute(0, 3, 1, 2).float().div(255)
    return save_grid(tiles, path, columns=columns)
