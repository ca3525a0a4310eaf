"""Build a FastGANFitModule from its components and plain regressor settings (what a config provides)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.perception.heatmaps import HeatmapSource
from fastganfit.perception.identity import IdentityNet
from fastganfit.perception.landmarks import NUM_LANDMARKS
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.reconstruction.landmark_camera import landmark_feature_count
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.regression.identity_prior import IdentityPriorSettings, fit_identity_prior
from fastganfit.regression.landmark_prior import LandmarkPriorSettings, fit_landmark_prior
from fastganfit.regression.module import FastGANFitModule
from fastganfit.regression.regressor import Regressor
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
    fit_prior: bool = True,
    **module_kwargs: Any,
) -> FastGANFitModule:
    """A :class:`FastGANFitModule` over the components' :class:`FaceReconstructionGraph`, with a
    :class:`Regressor` sized from the components.

    ``renderer``: a FaceRenderer, or a callable building one for ``model`` (e.g. a partial of
    :meth:`FaceRenderer.from_model`). ``regressor``: keyword arguments of :class:`Regressor` other than
    ``sizes``, ``identity_channels``, ``heatmap_channels`` and ``landmark_features`` (read from the model, texture
    model, camera, lighting and identity network), plus ``landmark_input`` (bool, default false): feed the
    regressor the landmarks' offsets from the mean face under the landmark camera
    (:meth:`FastGANFitModule.landmark_features`), and ``landmark_prior`` (``None``, or
    :class:`LandmarkPriorSettings` keyword arguments): add landmark heads (needs ``landmark_input``) that start
    from the least-squares landmarks -> shape and expression map of the model's prior
    (:mod:`fastganfit.regression.landmark_prior`), and ``identity_prior`` (``None``, or
    :class:`IdentityPriorSettings` keyword arguments): add a linear shape head on the identity network's embedding
    that starts from the ridge map fitted on rendered synthetic faces to the shape the landmark map leaves
    unexplained (:mod:`fastganfit.regression.identity_prior`). The maps are fitted here when ``fit_prior`` is true
    and there is no ``init_checkpoint`` (whose weights replace them; ``fit_prior=False`` when a checkpoint's
    weights will).
    ``module_kwargs`` go to :class:`FastGANFitModule` (phase, optimiser, ...).
    """
    graph = FaceReconstructionGraph.from_components(model, texture, renderer, identity, heatmaps)
    read = {"sizes", "identity_channels", "heatmap_channels", "landmark_features", "identity_head"}
    reserved = sorted(read & set(regressor))
    if reserved:
        raise ValueError(f"build_fast_ganfit: regressor settings {reserved} are read from the components; remove them")
    settings = dict(regressor)
    landmark_input = bool(settings.pop("landmark_input", False))
    prior = settings.pop("landmark_prior", None)
    if prior is not None and not landmark_input:
        raise ValueError("build_fast_ganfit: regressor.landmark_prior needs regressor.landmark_input: true")
    prior_settings = None if prior is None else LandmarkPriorSettings(**prior)
    identity_prior = settings.pop("identity_prior", None)
    identity_settings = None if identity_prior is None else IdentityPriorSettings(**identity_prior)
    camera_params = graph.renderer.camera.num_params
    network = Regressor(
        graph.sizes,
        identity_channels=identity_activation_channels(identity),
        heatmap_channels=NUM_LANDMARKS,
        landmark_features=landmark_feature_count(NUM_LANDMARKS, camera_params) if landmark_input else 0,
        landmark_heads=prior_settings is not None,
        identity_head=0 if identity_settings is None else identity.embedding_dim,
        **settings,
    )
    if fit_prior and module_kwargs.get("init_checkpoint") is None:
        landmark_map = None if prior_settings is None else fit_landmark_prior(graph, prior_settings)
        if landmark_map is not None:
            network.set_landmark_map(**vars(landmark_map))
        if identity_settings is not None:
            noise = 0.0 if prior_settings is None else prior_settings.noise
            network.set_identity_map(**vars(fit_identity_prior(graph, identity_settings, landmark_map, noise)))
    return FastGANFitModule(graph, network, loss, **module_kwargs)
