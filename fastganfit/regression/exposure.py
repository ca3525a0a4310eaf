"""The regressor's exposure match: the regressed light made as bright as the photo, in closed form.

The regressor learns its light on synthetic faces, whose light never makes the skin brighter than its albedo
(ambient + directional = 1); studio portraits are exposed brighter, and on them the regressed render came out about
7 L* darker than the photo (BENCHMARKS.md, section portrait_colour). As the landmark camera fits the camera in
closed form before the camera head's residual, the exposure match fits one number after the heads: the ratio of
the photo's brightness to the render's at the skin points between the landmarks (the points the colour heads read,
:func:`~fastganfit.regression.regressor.face_colour_features`), by which the light's strength is multiplied
(``lighting.brighter``: same colour and direction). No optimisation and no extra render (the regression's own
render gives the ratio); it changes the light's brightness only, so the albedo keeps the skin's lightness and colour
as the heads read them.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from fastganfit.params import FaceParams
from fastganfit.reconstruction.graph import FaceReconstructionGraph, Reconstruction
from fastganfit.regression.regressor import face_colour_features

#: The gain stays within these bounds (a failed render or a photo of a dark room must not blow the light up).
GAIN_RANGE = (0.5, 2.0)


def exposure_gain(render: Tensor, image: Tensor, landmarks: Tensor) -> Tensor:
    """``[B]``: the mean brightness (channel mean) of ``image [B, 3, H, W]`` over the skin points between
    ``landmarks [B, 68, 2]`` (pixels) divided by that of ``render [B, 3, H, W]``, clamped to :data:`GAIN_RANGE`."""
    photo = face_colour_features(image, landmarks)[:, :3].mean(dim=1)
    rendered = face_colour_features(render, landmarks)[:, :3].mean(dim=1)
    return (photo / rendered.clamp(min=1e-3)).clamp(*GAIN_RANGE)


def match_exposure(graph: FaceReconstructionGraph, result: Reconstruction) -> FaceParams:
    """``result``'s parameters with the light :func:`exposure_gain` times as bright (same colour, direction and
    everything else); differentiable in the parameters, not through the gain."""
    gain = exposure_gain(result.render.image, result.target.image, result.target.landmarks).detach()
    return replace(result.params, light=graph.renderer.lighting.brighter(result.params.light, gain))
