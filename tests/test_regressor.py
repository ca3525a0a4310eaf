"""Regressor: zero output when untrained, gradients and learning, configuration, local weights, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.params import GROUPS, FaceParams, ParamSizes
from fastganfit.perception.heatmaps import gaussian_heatmaps
from fastganfit.reconstruction.losses import landmark_loss, pixel_loss
from fastganfit.regression.regressor import IdentityAdapter, Regressor
from fastganfit.render.camera import PerspectiveCamera
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import PhongLighting
from fastganfit.texture.pca import PCATexture

SIZES = ParamSizes(shape=6, expression=4, texture=5, camera=7, light=10)
BACKBONE = "resnet10t"  # the smallest timm ResNet: keeps these tests fast on CPU
IDENTITY_CHANNELS = [8, 16]


def small_regressor(sizes: ParamSizes = SIZES, **kwargs: object) -> Regressor:
    options = {"adapter_channels": 8, "heatmap_backbone": BACKBONE, "feature_dim": 32, "hidden": 32, **kwargs}
    return Regressor(sizes, IDENTITY_CHANNELS, **options)


def identity_activations(batch: int = 2) -> list[torch.Tensor]:
    """Random stand-ins for two identity-network layers, ``[B, 8, 9, 9]`` and ``[B, 16, 5, 5]``."""
    return [torch.randn(batch, 8, 9, 9), torch.randn(batch, 16, 5, 5)]


def heatmaps(batch: int = 2, crop_size: int = 224) -> torch.Tensor:
    """Gaussian heatmaps ``[B, 68, 64, 64]`` of random landmarks in the middle of the crop."""
    landmarks = crop_size * (0.2 + 0.6 * torch.rand(batch, 68, 2))
    return gaussian_heatmaps(landmarks, crop_size=crop_size, heatmap_size=64)


def test_untrained_regressor_gives_exactly_zero_params() -> None:
    params = small_regressor()(identity_activations(), heatmaps())
    assert isinstance(params, FaceParams) and params.sizes == SIZES and params.batch_size == 2
    assert torch.equal(params.flatten(), torch.zeros(2, SIZES.total))


def test_heads_get_gradients_and_one_step_changes_the_output() -> None:
    regressor = small_regressor()
    inputs = (identity_activations(), heatmaps())
    target = torch.randn(2, SIZES.total)
    loss = (regressor(*inputs).flatten() - target).square().mean()
    loss.backward()
    for name in GROUPS:
        assert regressor.heads[name].weight.grad.abs().sum() > 0, name
        assert regressor.heads[name].bias.grad.abs().sum() > 0, name
    optimiser = torch.optim.Adam(regressor.parameters(), lr=1e-2)
    optimiser.step()
    optimiser.zero_grad()
    after = regressor(*inputs).flatten()
    assert after.abs().min() > 0
    assert (after - target).square().mean() < loss
    # with non-zero heads, the gradient now reaches the fusion MLP, the adapters and the backbone
    (after - target).square().mean().backward()
    for part in (regressor.fusion, regressor.adapters, regressor.backbone):
        assert sum(p.grad.abs().sum() for p in part.parameters() if p.grad is not None) > 0


def test_output_scales_multiply_each_group() -> None:
    regressor = small_regressor(output_scales={"camera": 0.1, "light": 2.0})
    with torch.no_grad():
        for head in regressor.heads.values():
            head.bias.fill_(1.0)
    params = regressor(identity_activations(), heatmaps())
    assert torch.allclose(params.camera, torch.full((2, 7), 0.1))
    assert torch.allclose(params.light, torch.full((2, 10), 2.0))
    assert torch.equal(params.shape, torch.ones(2, 6))
    with pytest.raises(ValueError, match=r"unknown groups \['albedo'\]"):
        small_regressor(output_scales={"albedo": 1.0})


def test_output_scales_per_coordinate() -> None:
    camera = [0.05, 0.05, 0.05, 0.5, 0.5, 0.5, 0.05]
    regressor = small_regressor(output_scales={"camera": camera, "expression": 0.2})
    with torch.no_grad():
        for head in regressor.heads.values():
            head.bias.fill_(2.0)
    params = regressor(identity_activations(), heatmaps())
    assert torch.allclose(params.camera, 2.0 * torch.tensor(camera).expand(2, 7))
    assert torch.allclose(params.expression, torch.full((2, 4), 0.4))
    # the scales are settings, not weights: they stay out of the state dict (and so out of checkpoints)
    assert not any("scale" in key for key in regressor.state_dict())
    with pytest.raises(ValueError, match=r"output_scales\['camera'\] must be one positive number or 7"):
        small_regressor(output_scales={"camera": [0.1, 0.2]})
    with pytest.raises(ValueError, match=r"output_scales\['shape'\] must be one positive number"):
        small_regressor(output_scales={"shape": 0.0})


def test_group_norm_heatmap_backbone_is_per_sample() -> None:
    """``heatmap_norm="groupnorm1"``: a face's output depends neither on the mode nor on the rest of the batch."""
    regressor = small_regressor(heatmap_norm="groupnorm1")
    assert not any(isinstance(module, torch.nn.BatchNorm2d) for module in regressor.backbone.modules())
    with torch.no_grad():
        for head in regressor.heads.values():
            torch.nn.init.normal_(head.weight)
    activations, maps = identity_activations(3), heatmaps(3)
    together = regressor(activations, maps).flatten()
    alone = regressor([activation[:1] for activation in activations], maps[:1]).flatten()
    regressor.eval()
    evaluated = regressor(activations, maps).flatten()
    assert together.abs().sum() > 0
    assert torch.allclose(together[:1], alone, atol=1e-5) and torch.allclose(together, evaluated, atol=1e-5)


def test_adapters_are_configurable_per_layer() -> None:
    adapter = IdentityAdapter(16, out_channels=4, pool_size=2)
    assert adapter(torch.randn(2, 16, 5, 5)).shape == (2, 16) and adapter.out_features == 16
    regressor = small_regressor(adapter_channels=[4, 6], adapter_pool=[1, 3], heatmap_backbone=None)
    assert [a.out_features for a in regressor.adapters] == [4, 54]
    assert regressor.fusion[0].in_features == 58 and regressor.backbone is None
    params = regressor(identity_activations())
    assert torch.equal(params.flatten(), torch.zeros(2, SIZES.total))
    with pytest.raises(ValueError, match="adapter_pool has 3 entries for 2 identity layers"):
        small_regressor(adapter_pool=[1, 2, 3])
    with pytest.raises(ValueError, match=r"expected \[B, 16, h, w\]"):
        adapter(torch.randn(2, 8, 5, 5))


def test_heatmap_only_regressor_and_input_checks() -> None:
    regressor = Regressor(SIZES, [], heatmap_backbone=BACKBONE, feature_dim=16, hidden=16)
    assert regressor.fusion[0].in_features == regressor.backbone.num_features
    assert torch.equal(regressor([], heatmaps()).flatten(), torch.zeros(2, SIZES.total))
    with pytest.raises(ValueError, match=r"expected heatmaps \[B, 68, H, W\], got \[2, 5, 64, 64\]"):
        regressor([], torch.zeros(2, 5, 64, 64))
    with pytest.raises(ValueError, match="expected 0 identity activations, got 2"):
        regressor(identity_activations(), heatmaps())
    with pytest.raises(ValueError, match="needs identity_channels, a heatmap_backbone or landmark_features"):
        Regressor(SIZES, [], heatmap_backbone=None)


def test_local_backbone_weights_are_loaded(tmp_path: Path) -> None:
    source = timm.create_model(BACKBONE, pretrained=False)  # a 3-channel classifier, as timm ships weights
    path = tmp_path / "resnet10t.pth"
    torch.save(source.state_dict(), path)
    regressor = small_regressor(heatmap_weights=path)
    backbone = regressor.backbone
    assert torch.equal(backbone.layer4[0].conv1.weight, source.layer4[0].conv1.weight)
    assert backbone.conv1[0].weight.shape[1] == 68  # the first convolution is adapted to 68 heatmaps
    assert torch.equal(regressor(identity_activations(), heatmaps()).flatten(), torch.zeros(2, SIZES.total))
    with pytest.raises(FileNotFoundError, match=r"missing\.pth do not exist"):
        small_regressor(heatmap_weights=tmp_path / "missing.pth")


def test_end_to_end_render_losses_reach_every_head(ict_model: MorphableModel) -> None:
    """regressor -> FaceParams -> MorphableModel -> FaceRenderer (32 px) -> pixel + landmark loss -> backward."""
    image_size = 32
    resolution = 8
    mean = torch.tensor([0.7, 0.5, 0.4]).view(3, 1, 1).expand(3, resolution, resolution)
    texture_model = PCATexture(mean, 0.05 * torch.randn(5, 3, resolution, resolution), torch.ones(5))
    camera, lighting = PerspectiveCamera(), PhongLighting()
    sizes = ParamSizes.from_models(ict_model, texture_model, camera, lighting)
    renderer = FaceRenderer.from_model(
        ict_model, image_size=image_size, backend="torch", camera=camera, lighting=lighting
    )
    regressor = small_regressor(sizes)

    with torch.no_grad():
        mean_landmarks = renderer(
            ict_model.mean_vertices(1),
            texture_model(texture_model.zero_latent(1)),
            torch.zeros(1, 7),
            torch.zeros(1, 10),
        ).landmarks
    target_landmarks = mean_landmarks + torch.randn(2, 68, 2)
    target_image = torch.rand(2, 3, image_size, image_size)
    crop_landmarks = (target_landmarks + 0.5) * (224 / image_size) - 0.5
    heat = gaussian_heatmaps(crop_landmarks, crop_size=224, heatmap_size=64)

    params = regressor(identity_activations(), heat)
    output = renderer(
        ict_model(params.shape, params.expression), texture_model(params.texture), params.camera, params.light
    )
    assert output.mask.sum() > 0.2 * image_size**2  # the mean face fills the crop
    loss = pixel_loss(output.image, target_image, output.mask) + landmark_loss(
        output.landmarks, target_landmarks, output.landmark_visibility
    )
    assert torch.isfinite(loss).all() and (loss > 0).all()
    loss.mean().backward()
    for name in GROUPS:
        grad = regressor.heads[name].weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_landmark_feature_input() -> None:
    """An optional landmark feature vector joins the fusion MLP; alone it is enough to build a regressor."""
    regressor = small_regressor(landmark_features=5)
    assert regressor.fusion[0].in_features == 2 * 8 + regressor.backbone.num_features + 5  # two adapters of 8
    with torch.no_grad():
        torch.nn.init.normal_(regressor.heads["shape"].weight)
    inputs = (identity_activations(), heatmaps())
    first, second = torch.zeros(2, 5), torch.zeros(2, 5)
    second[:, 0] = 3.0
    assert not torch.allclose(regressor(*inputs, first).shape, regressor(*inputs, second).shape)
    with pytest.raises(ValueError, match=r"expected landmark features \[B, 5\], got None"):
        regressor(*inputs)
    alone = Regressor(SIZES, [], heatmap_backbone=None, landmark_features=5, feature_dim=16, hidden=16)
    assert torch.equal(alone([], None, torch.randn(3, 5)).flatten(), torch.zeros(3, SIZES.total))
