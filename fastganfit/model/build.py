"""Build a FastGANFitModule from its components and plain regressor settings (what a config provides)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.model.fast_ganfit import FastGANFitModule
from fastganfit.model.landmark_camera import landmark_feature_count
from fastganfit.model.losses import GANFitLoss
from fastganfit.model.regressor import Regressor
from fastganfit.params import ParamSizes
from fastganfit.perception.heatmaps import HeatmapSource
from fastganfit.perception.identity import IdentityNet
from fastganfit.perception.landmarks import NUM_LANDMARKS
from fastganfit.render.face_renderer import FaceRenderer


@torch.no_grad()
def identity_activation_channels(identity: IdentityNet) -> list[int]:
    """Channel count of each activation ``identity`` returns (its selected layers, in order), read from one
    forward pass of a blank chip."""
    size = identity.backbone.chip_size
    chip = torch.zeros(1, 3, size, size, device=next(identity.parameters()).device)
    _, activations = identity.backbone.forward_features(chip, identity.layers)
    return [int(activation.shape[1]) for activation in activations]


def build_fast_ganfit(
    model: MorphableModel,
    texture: nn.Module,
    renderer: FaceRenderer | Callable[[MorphableModel], FaceRenderer],
    identity: IdentityNet,
    heatmaps: HeatmapSource,
    regressor: Mapping[str, Any],
    loss: GANFitLoss,
    **module_kwargs: Any,
) -> FastGANFitModule:
    """A :class:`FastGANFitModule` whose :class:`Regressor` is sized from the components.

    ``renderer``: a FaceRenderer, or a callable building one for ``model`` (e.g. a partial of
    :meth:`FaceRenderer.from_model`). ``regressor``: keyword arguments of :class:`Regressor` other than
    ``sizes``, ``identity_channels``, ``heatmap_channels`` and ``landmark_features`` (read from the model, texture
    model, camera, lighting and identity network), plus ``landmark_input`` (bool, default false): feed the
    regressor the landmarks' offsets from the mean face under the landmark camera
    (:meth:`FastGANFitModule.landmark_features`). ``module_kwargs`` go to :class:`FastGANFitModule` (phase,
    optimiser, ...).
    """
    if not isinstance(renderer, FaceRenderer):
        renderer = renderer(model)
    reserved = sorted({"sizes", "identity_channels", "heatmap_channels", "landmark_features"} & set(regressor))
    if reserved:
        raise ValueError(f"build_fast_ganfit: regressor settings {reserved} are read from the components; remove them")
    settings = dict(regressor)
    landmark_input = bool(settings.pop("landmark_input", False))
    sizes = ParamSizes.from_models(model, texture, renderer.camera, renderer.lighting)
    network = Regressor(
        sizes,
        identity_channels=identity_activation_channels(identity),
        heatmap_channels=NUM_LANDMARKS,
        landmark_features=landmark_feature_count(NUM_LANDMARKS, renderer.camera.num_params) if landmark_input else 0,
        **settings,
    )
    return FastGANFitModule(model, texture, renderer, identity, heatmaps, network, loss, **module_kwargs)
