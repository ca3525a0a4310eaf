"""Picture rows for training logs: input | render | overlay | UV texture, one row per face."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from fastganfit.io.landmark_overlays import draw_landmarks

PANELS_PER_ROW = 4


def reconstruction_panels(
    image: Tensor, render: Tensor, mask: Tensor, landmarks: Tensor, visibility: Tensor, texture: Tensor
) -> Tensor:
    """``[4 B, 3, H, W]`` in [0, 1]: for each face the input ``image [B, 3, H, W]``, the ``render [B, 3, H, W]``
    (over the input), an overlay (input and render half and half on the covered pixels ``mask [B, 1, H, W]``,
    with the render's ``landmarks [B, 68, 2]`` drawn, hidden ones ``visibility [B, 68]`` in red) and the UV
    ``texture [B, 3, Ht, Wt]`` resized to ``H x W``; lay them out with 4 columns."""
    image, render, mask = image.detach().float(), render.detach().float(), mask.detach().float()
    blended = image * (1.0 - 0.5 * mask) + 0.5 * mask * render
    overlays = torch.stack(
        [
            torch.from_numpy(draw_landmarks(face.cpu(), points.cpu(), visible=seen.cpu(), radius=1.0))
            .permute(2, 0, 1)
            .float()
            / 255.0
            for face, points, seen in zip(blended, landmarks.detach(), visibility.detach(), strict=True)
        ]
    ).to(image.device)
    uv = F.interpolate(texture.detach().float(), size=image.shape[-2:], mode="bilinear", align_corners=False)
    return torch.stack([image, render, overlays, uv.clamp(0, 1)], dim=1).flatten(0, 1)
