"""The report picture of one fitted face: input | render | overlay | UV texture | shaded side view."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.utils import make_grid

from fastganfit.fitting.views import FaceViews
from fastganfit.io.images import image_to_uint8
from fastganfit.reconstruction.panels import reconstruction_panels

REPORT_PANELS = ("input", "render", "overlay", "texture", "side view")


def report_images(crops: torch.Tensor, views: FaceViews, padding: int = 2) -> list[np.ndarray]:
    """One uint8 ``[S + 2 padding, 5 S + 6 padding, 3]`` row per face (:data:`REPORT_PANELS`, on white) from
    ``crops [B, 3, S, S]`` in [0, 1] and their :class:`FaceViews`; the overlay shows the render's landmarks
    (hidden ones in red)."""
    panels = reconstruction_panels(crops, views.render, views.mask, views.landmarks, views.visibility, views.texture)
    panels = panels.view(crops.shape[0], -1, *panels.shape[1:])
    side = F.interpolate(views.side, size=crops.shape[-2:], mode="bilinear", align_corners=False)
    rows = torch.cat([panels, side[:, None]], dim=1).cpu()
    return [image_to_uint8(make_grid(row, nrow=len(REPORT_PANELS), padding=padding, pad_value=1.0)) for row in rows]
