"""The crop template: where the 68 landmarks of an aligned face crop lie."""

from __future__ import annotations

import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.perception.crop import DEFAULT_CROP_SIZE
from fastganfit.render.camera import PerspectiveCamera


def crop_template(crop_size: int = DEFAULT_CROP_SIZE, model: MorphableModel | None = None,
                  camera: PerspectiveCamera | None = None) -> torch.Tensor:
    """The 68 template landmarks ``[68, 2]`` (crop pixels) that aligned crops are warped onto.

    They are the mean face's landmarks projected by the zero-parameter camera into a ``crop_size``
    square image (defaults: the embedded ICT model and ``PerspectiveCamera()``).
    """
    model = model or MorphableModel.ict()
    camera = camera or PerspectiveCamera()
    landmarks = model.landmarks(model.mean_vertices(1))
    return camera.project(landmarks, landmarks.new_zeros(1, camera.num_params), (crop_size, crop_size))[0, :, :2]
