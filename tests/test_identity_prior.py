"""The identity prior: a ridge map from the identity network's embedding to the shape the landmark map leaves
unexplained, fitted on rendered synthetic faces; the regressor's identity head that carries it; build and
checkpoints (old checkpoints without the head still load)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_checkpoint import save_checkpoint, tiny_model_config

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.params import ParamSizes
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.perception.identity import dlib_identity
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.identity_prior import IdentityPriorSettings, fit_identity_prior, identity_prior_samples
from fastganfit.regression.landmark_prior import LandmarkPriorSettings, fit_landmark_prior
from fastganfit.regression.regressor import Regressor
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 64
SIZES = ParamSizes(shape=5, expression=3, texture=2, camera=7, light=9)


@pytest.fixture(scope="module")
def graph(ict_model: MorphableModel) -> FaceReconstructionGraph:
    """A graph at test size with the dlib identity network (the prior embeds rendered faces with it)."""
    renderer = FaceRenderer.from_model(ict_model, image_size=SIZE, backend="torch")
    identity = dlib_identity(layers=[])
    return FaceReconstructionGraph(ict_model, ProceduralTexture(ict_model, 16), renderer, identity,
                                   GaussianHeatmaps(SIZE, 32))  # fmt: skip


def test_identity_head_computes_the_map_it_is_given() -> None:
    regressor = Regressor(SIZES, [], heatmap_backbone=None, landmark_features=4, identity_head=6,
                          output_scales={"shape": 0.5})  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    mean, std = torch.randn(6, generator=generator), torch.rand(6, generator=generator) + 0.5
    weight, bias = torch.randn(6, 5, generator=generator), torch.randn(5, generator=generator)
    embedding = torch.randn(3, 6, generator=generator)
    landmarks = torch.randn(3, 4, generator=generator)
    assert torch.equal(regressor([], None, landmarks, embedding=embedding).shape, torch.zeros(3, 5))  # zero at first
    regressor.set_identity_map(mean, std, weight, bias)
    shape = regressor([], None, landmarks, embedding=embedding).shape
    assert torch.allclose(shape, (embedding - mean) / std @ weight + bias, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected an identity embedding \[3, 6\], got None"):
        regressor([], None, landmarks)
    with pytest.raises(ValueError, match=r"expected mean, std \[6\], weight \[6, 5\]"):
        regressor.set_identity_map(mean, std, weight[:, :4], bias)
    with pytest.raises(ValueError, match="no identity head"):
        Regressor(SIZES, [], heatmap_backbone=None, landmark_features=4).set_identity_map(mean, std, weight, bias)
    with pytest.raises(ValueError, match="identity_head must be an embedding width or 0"):
        Regressor(SIZES, [], heatmap_backbone=None, landmark_features=4, identity_head=-1)


def test_prior_fits_the_landmark_residual_and_gain_scales_it(graph: FaceReconstructionGraph) -> None:
    settings = IdentityPriorSettings(samples=48, seed=3, ridge=1.0)
    landmark_map = fit_landmark_prior(graph, LandmarkPriorSettings(samples=512, noise=0.01))
    embeddings, features, shapes = identity_prior_samples(graph, settings, landmark_noise=0.01)
    assert embeddings.shape == (48, 128) and features.shape == (48, 143) and shapes.shape == (48, graph.sizes.shape)
    residual = shapes - landmark_map(features)[:, : graph.sizes.shape]
    fitted = fit_identity_prior(graph, settings, landmark_map, landmark_noise=0.01)
    # least squares on its own samples: the residual shrinks (ridge 1 on 128 features of 48 faces fits most of it)
    assert (residual - fitted(embeddings)).square().mean() < 0.5 * residual.square().mean()
    doubled = fit_identity_prior(graph, IdentityPriorSettings(samples=48, seed=3, ridge=1.0, gain=2.0), landmark_map,
                                 landmark_noise=0.01)  # fmt: skip
    assert torch.allclose(doubled(embeddings), 2.0 * fitted(embeddings), atol=1e-9)
    with pytest.raises(ValueError, match="gain must be positive"):
        IdentityPriorSettings(gain=0.0)
    with pytest.raises(ValueError, match="samples must be at least 16"):
        IdentityPriorSettings(samples=4)


def test_build_fits_a_frozen_identity_head_and_old_checkpoints_load(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    config = tiny_model_config()
    module = instantiate(config, _convert_="all")
    head = module.regressor.identity_head
    assert head is not None and head.weight.abs().sum() > 0 and not head.weight.requires_grad
    assert not torch.equal(module.regressor.embedding_std, torch.ones(128))
    # a checkpoint written before the identity head (no identity_prior in its config, no head weights) still loads
    old_config = {**config, "regressor": {key: value for key, value in config["regressor"].items()
                                          if key != "identity_prior"}}  # fmt: skip
    old = instantiate(old_config, fit_prior=False, _convert_="all")
    path = save_checkpoint(tmp_path / "old.ckpt", old_config, old.regressor.state_dict())
    loaded = load_fast_ganfit(path)
    assert loaded.regressor.identity_head is None
