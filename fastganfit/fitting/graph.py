"""GANFit's graph driven by parameters instead of the regressor: the frozen components of a FastGANFitModule
render given FaceParams over the input, and a stage's GANFitLoss scores the render.

The module's own pieces are reused: ``to_render_frame`` (crops to the render size), its ``model``,
``texture``, ``renderer`` and ``identity`` network, and its :class:`Reconstruction` record.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fastganfit.model.fast_ganfit import FastGANFitModule, Reconstruction
from fastganfit.model.losses import GANFitLoss
from fastganfit.params import FaceParams
from fastganfit.perception.identity import IdentityOutput


@dataclass(frozen=True)
class FitTarget:
    """What renders are compared with: the crops at the render size ``image [B, 3, R, R]``, their
    ``landmarks [B, 68, 2]`` (render pixels) and the identity network's view of them."""

    image: Tensor
    landmarks: Tensor
    identity_input: IdentityOutput


@torch.no_grad()
def fit_target(module: FastGANFitModule, crops: Tensor, landmarks: Tensor) -> FitTarget:
    """The target of aligned ``crops [B, 3, S, S]`` in [0, 1] with ``landmarks [B, 68, 2]`` (crop pixels)."""
    image, render_landmarks = module.to_render_frame(crops, landmarks)
    return FitTarget(image, render_landmarks, module.identity(image, render_landmarks))


def render_params(module: FastGANFitModule, target: FitTarget, params: FaceParams) -> Reconstruction:
    """Render ``params`` (batch B) over the target images; differentiable in ``params``."""
    vertices = module.model(params.shape, params.expression)
    texture = module.texture(params.texture)
    render = module.renderer(vertices, texture, params.camera, params.light, background=target.image)
    return Reconstruction(target.image, target.landmarks, target.identity_input, params, vertices, texture, render)


def objective(module: FastGANFitModule, result: Reconstruction, loss: GANFitLoss) -> tuple[Tensor, dict[str, Tensor]]:
    """``loss`` of a reconstruction (:meth:`FastGANFitModule.objective` with a stage's loss): the total (scalar)
    and each active term's batch mean."""
    return module.objective(result, loss)
