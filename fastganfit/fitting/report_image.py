"""The report picture of one fitted face: input | render | overlay | model UV texture | photo UV texture | shaded
side view."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from fastganfit.fitting.views import FaceViews
from fastganfit.io.images import image_to_uint8
from fastganfit.reconstruction.panels import reconstruction_panels

REPORT_PANELS = ("input", "render", "overlay", "texture", "photo texture", "side view")


def report_images(
    crops: torch.Tensor, views: FaceViews, photo_texture: torch.Tensor | None = None, padding: int = 2
) -> list[np.ndarray]:
    """One uint8 ``[S + 2 padding, N S + (N + 1) padding, 3]`` row per face (:data:`REPORT_PANELS`, on white) from
    ``crops [B, 3, S, S]`` in [0, 1], their :class:`FaceViews` and the UV ``photo_texture [B, 3, Ht, Wt]`` taken from
    the photo (``None``: that panel is left out, N = 5; else N = 6); the overlay shows the render's landmarks
    (hidden ones in red)."""
    size = crops.shape[-2:]
    panels = reconstruction_panels(crops, views.render, views.mask, views.landmarks, views.visibility, views.texture)
    panels = list(panels.view(crops.shape[0], -1, *panels.shape[1:]).unbind(1))
    if photo_texture is not None:
        photo = F.interpolate(photo_texture.detach().float(), size=size, mode="bilinear", align_corners=False)
        panels.append(photo.clamp(0, 1).to(crops.device))
    panels.append(F.interpolate(views.side, size=size, mode="bilinear", align_corners=False))
    rows = torch.stack(panels, dim=1).cpu()
    return [image_to_uint8(make_grid(row, nrow=len(panels), padding=padding, pad_value=1.0)) for row in rows]
