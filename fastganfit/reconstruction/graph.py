"""GANFit's reconstruction graph: FaceParams -> mesh, UV texture -> render over the input -> loss terms.

One graph, two drivers: :class:`~fastganfit.regression.module.FastGANFitModule` drives it with the regressor's
output, :mod:`fastganfit.fitting` with leaf tensors being optimised (GANFit, GANFit++). Per batch of aligned
crops ``[B, 3, S, S]`` in [0, 1] with landmarks ``[B, 68, 2]`` (crop pixels)::

    crop -> resize to the render size R                 -> target image [B, 3, R, R], landmarks [B, 68, 2]
    identity(target)                          (no grad) -> activations, embedding          (FitTarget)
    heatmaps(crop, crop landmarks)            (no grad) -> [B, 68, h, h]                    (regressor input)
    landmark camera (closed form, mean face)            -> camera0 [B, 7]
    model(shape, expression), texture(latent)           -> vertices [B, V, 3] (mm), UV texture [B, 3, Ht, Wt]
    renderer(..., background=target image)              -> render over the input, mask, projected landmarks
    loss(params, render, target, identity(render))      -> total, terms

Every part is frozen and stays in eval mode; gradients flow through it to whatever produced the parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.params import FaceParams, ParamSizes
from fastganfit.perception.heatmaps import HeatmapSource
from fastganfit.perception.identity import IdentityNet, IdentityOutput
from fastganfit.reconstruction.landmark_camera import camera_from_landmarks, landmark_residual_features
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.render.constants import constant
from fastganfit.render.face_renderer import FaceRenderer, RenderOutput
from fastganfit.render.precision import float32_region, to_float32

#: The frozen components a graph owns, by attribute name.
COMPONENTS: tuple[str, ...] = ("model", "texture", "renderer", "identity", "heatmaps")


@dataclass(frozen=True)
class FitTarget:
    """What renders are compared with: the crops at the render size ``image [B, 3, R, R]``, their
    ``landmarks [B, 68, 2]`` (render pixels), the identity network's view of them and which are greyscale
    photos (``greyscale [B]`` bool; ``None``: none): those are rendered in grey, as they carry no colour to fit."""

    image: Tensor
    landmarks: Tensor
    identity_input: IdentityOutput
    greyscale: Tensor | None = None


#: Images whose channels differ from their mean by less than this on average ([0, 1] units) are greyscale.
GREYSCALE_TOLERANCE = 1.0 / 255.0
#: Rec. 601 luma weights: the grey a colour render is shown as for a greyscale photo.
LUMA = (0.299, 0.587, 0.114)


def greyscale_images(images: Tensor) -> Tensor:
    """``[B]`` bool: which of ``images [B, 3, H, W]`` are greyscale (equal channels up to JPEG noise)."""
    return (images - images.mean(1, keepdim=True)).abs().mean((1, 2, 3)) < GREYSCALE_TOLERANCE


def grey_where(images: Tensor, which: Tensor) -> Tensor:
    """``images [B, 3, H, W]`` with those where ``which [B]`` is true replaced by their luma (no host sync)."""
    # the weights as Python scalars: a tensor made from LUMA would be a host-to-device copy every call
    luma = sum(weight * images[:, channel : channel + 1] for channel, weight in enumerate(LUMA)).expand_as(images)
    return torch.where(which.view(-1, 1, 1, 1), luma, images)


@dataclass
class Reconstruction:
    """One batch through the graph: the ``target`` it is compared with, the ``params``, ``vertices [B, V, 3]``
    (mm, model frame), UV ``texture [B, 3, Ht, Wt]`` and the ``render`` over the target image."""

    target: FitTarget
    params: FaceParams
    vertices: Tensor
    texture: Tensor
    render: RenderOutput

    @property
    def image(self) -> Tensor:
        """The input at the render size ``[B, 3, R, R]``."""
        return self.target.image

    @property
    def landmarks(self) -> Tensor:
        """The input's landmarks ``[B, 68, 2]`` in render pixels."""
        return self.target.landmarks


class FaceReconstructionGraph(nn.Module):
    """The frozen GANFit graph: ``model`` (MorphableModel), ``texture`` (texture model: ``latent [B, Kt] ->
    [B, 3, Ht, Wt]``), ``renderer`` (FaceRenderer; its ``image_size`` is the render size), ``identity``
    (IdentityNet) and ``heatmaps`` (HeatmapSource on the data's crops). See the module docstring for the flow.
    """

    def __init__(
        self,
        model: MorphableModel,
        texture: nn.Module,
        renderer: FaceRenderer,
        identity: IdentityNet,
        heatmaps: HeatmapSource,
    ) -> None:
        super().__init__()
        self.model, self.texture, self.renderer = model, texture, renderer
        self.identity, self.heatmaps = identity, heatmaps
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_components(
        cls,
        model: MorphableModel,
        texture: nn.Module,
        renderer: FaceRenderer | Callable[[MorphableModel], FaceRenderer],
        identity: IdentityNet,
        heatmaps: HeatmapSource,
    ) -> FaceReconstructionGraph:
        """A graph from built components; ``renderer`` may be a callable building one for ``model`` (e.g. a partial
        of :meth:`FaceRenderer.from_model`, as the configs give it)."""
        if not isinstance(renderer, FaceRenderer):
            renderer = renderer(model)
        return cls(model, texture, renderer, identity, heatmaps)

    def train(self, mode: bool = True) -> FaceReconstructionGraph:
        """The graph is frozen: it stays in eval mode whatever ``mode`` says."""
        return super().train(False)

    @property
    def sizes(self) -> ParamSizes:
        """FaceParams sizes of the components."""
        return ParamSizes.from_models(self.model, self.texture, self.renderer.camera, self.renderer.lighting)

    @property
    def crop_size(self) -> int:
        """Side of the aligned crops the graph expects (the heatmap source's)."""
        return int(self.heatmaps.crop_size)

    @property
    def render_size(self) -> tuple[int, int]:
        """``(height, width)`` of renders (input crops are resized to it)."""
        return tuple(self.renderer.image_size)

    @property
    def device(self) -> torch.device:
        """The device of the graph's buffers."""
        return self.model.mean.device

    def to_render_frame(self, image: Tensor, landmarks: Tensor) -> tuple[Tensor, Tensor]:
        """Crops ``[B, 3, S, S]`` and their landmarks ``[B, 68, 2]`` resized to the render size (antialiased
        bilinear; pixel centres at integers, so ``x -> (x + 0.5) R / S - 0.5``)."""
        height, width = self.render_size
        if tuple(image.shape[-2:]) == (height, width):
            return image, landmarks
        scale = constant([width / image.shape[-1], height / image.shape[-2]], landmarks)
        resized = F.interpolate(image, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        return resized.clamp(0, 1), (landmarks + 0.5) * scale - 0.5

    @torch.no_grad()
    def target(self, crops: Tensor, landmarks: Tensor) -> FitTarget:
        """The target of aligned ``crops [B, 3, S, S]`` in [0, 1] with ``landmarks [B, 68, 2]`` (crop pixels)."""
        image, render_landmarks = self.to_render_frame(crops, landmarks)
        return FitTarget(image, render_landmarks, self.identity(image, render_landmarks), greyscale_images(image))

    @torch.no_grad()
    def input_heatmaps(self, crops: Tensor, landmarks: Tensor) -> Tensor:
        """Landmark heatmaps ``[B, 68, h, h]`` of ``crops [B, 3, S, S]`` with ``landmarks [B, 68, 2]``."""
        return self.heatmaps(crops, landmarks)

    @property
    def mean_landmarks(self) -> Tensor:
        """The mean face's 3D landmarks ``[68, 3]`` (mm, model frame)."""
        return self.model.mean[self.renderer.landmark_indices]

    def landmark_camera(self, landmarks: Tensor) -> Tensor:
        """Camera parameters ``[B, 7]`` projecting the mean face's landmarks onto ``landmarks [B, 68, 2]`` (render
        frame pixels); see :mod:`fastganfit.reconstruction.landmark_camera`."""
        return camera_from_landmarks(landmarks, self.mean_landmarks, self.renderer.camera, self.render_size)

    def landmark_features(self, landmarks: Tensor, camera: Tensor | None) -> Tensor:
        """``landmarks [B, 68, 2]`` (render frame) relative to the mean face seen by ``camera [B, 7]`` (``None``:
        the default camera) as ``[B, 143]`` features, see :func:`landmark_residual_features`."""
        if camera is None:
            camera = landmarks.new_zeros(landmarks.shape[0], self.renderer.camera.num_params)
        return landmark_residual_features(
            landmarks, self.mean_landmarks, camera, self.renderer.camera, self.render_size
        ).detach()

    def render(self, params: FaceParams, target: FitTarget) -> Reconstruction:
        """Render ``params`` (batch B) over the target images; differentiable in ``params``. The morphable model and
        the renderer run in float32 under autocast; the texture model in the autocast precision. Greyscale targets
        (``target.greyscale``) get the render's luma: their fit compares brightness only."""
        with float32_region(params.shape.device):
            vertices = self.model(*to_float32(params.shape, params.expression))
        texture = self.texture(params.texture)
        render = self.renderer(vertices, texture, params.camera, params.light, background=target.image)
        if target.greyscale is not None:
            render = replace(render, image=grey_where(render.image, target.greyscale))
        return Reconstruction(target, params, vertices, texture, render)

    def objective(
        self, result: Reconstruction, loss: GANFitLoss, light_reference: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``loss`` of a reconstruction: the total (scalar) and each active term's batch mean. ``light_reference
        [B, L]``: the light whose colour the light colour prior keeps (``None``: grey)."""
        needs_identity = loss.needs_identity
        render, target = result.render, result.target
        return loss(
            result.params,
            landmarks=render.landmarks,
            target_landmarks=target.landmarks,
            landmark_visibility=render.landmark_visibility,
            render=render.image,
            mask=render.mask,
            image=target.image,
            identity_render=self.identity(render.image, target.landmarks) if needs_identity else None,
            identity_input=target.identity_input if needs_identity else None,
            texture_model=self.texture,
            lighting=self.renderer.lighting,
            light_reference=light_reference,
        )
