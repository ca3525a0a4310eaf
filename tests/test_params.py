"""FaceParams and ParamSizes: sizes from the models, zeros = mean face, flat round trip, device/grad helpers."""

from __future__ import annotations

import pytest
import torch

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.params import GROUPS, FaceParams, ParamSizes
from fastganfit.render.camera import PerspectiveCamera
from fastganfit.render.lighting import PhongLighting, SphericalHarmonicsLighting
from fastganfit.texture.pca import PCATexture

SIZES = ParamSizes(shape=4, expression=3, texture=5, camera=7, light=10)


def tiny_texture(latent_dim: int = 5, resolution: int = 4) -> PCATexture:
    """A PCA texture with a skin-coloured mean and small modes."""
    mean = torch.tensor([0.7, 0.5, 0.4]).view(3, 1, 1).expand(3, resolution, resolution)
    basis = 0.01 * torch.randn(latent_dim, 3, resolution, resolution)
    return PCATexture(mean, basis, torch.ones(latent_dim))


def random_params(sizes: ParamSizes = SIZES, batch: int = 2) -> FaceParams:
    return FaceParams(**{name: torch.randn(batch, size) for name, size in sizes.items()})


def test_sizes_come_from_the_models(ict_model: MorphableModel) -> None:
    sizes = ParamSizes.from_models(ict_model, tiny_texture(latent_dim=6), PerspectiveCamera(), PhongLighting())
    assert sizes == ParamSizes(shape=100, expression=53, texture=6, camera=7, light=10)
    assert sizes.total == 100 + 53 + 6 + 7 + 10
    assert [name for name, _ in sizes.items()] == list(GROUPS)
    sh = ParamSizes.from_models(ict_model, tiny_texture(), PerspectiveCamera(), SphericalHarmonicsLighting())
    assert sh.light == 27
    with pytest.raises(ValueError, match="shape must be a non-negative integer"):
        ParamSizes(shape=-1, expression=3, texture=5, camera=7, light=10)


def test_zeros_have_the_sizes_and_are_zero() -> None:
    params = FaceParams.zeros(SIZES, batch_size=3, dtype=torch.float64)
    assert params.batch_size == 3 and params.sizes == SIZES
    for name, tensor in params.items():
        assert tensor.shape == (3, getattr(SIZES, name)) and tensor.dtype == torch.float64
        assert not tensor.any()
    assert params.flatten().shape == (3, SIZES.total)


def test_zero_params_are_the_mean_face_texture_and_ambient_white_light(ict_model: MorphableModel) -> None:
    texture_model = tiny_texture()
    lighting = PhongLighting()
    sizes = ParamSizes.from_models(ict_model, texture_model, PerspectiveCamera(), lighting)
    params = FaceParams.zeros(sizes, batch_size=2)
    vertices = ict_model(params.shape, params.expression)
    assert torch.equal(vertices, ict_model.mean_vertices(2))
    assert torch.equal(params.texture, texture_model.zero_latent(2))
    assert torch.allclose(texture_model(params.texture), texture_model.mean.expand(2, -1, -1, -1))
    albedo = torch.rand(2, 3, 4, 4)
    normals = torch.nn.functional.normalize(torch.randn(2, 3, 4, 4), dim=1)
    view_dirs = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert torch.allclose(lighting.shade(albedo, normals, view_dirs, params.light), albedo)


def test_flatten_unflatten_round_trip_in_group_order() -> None:
    params = random_params()
    flat = params.flatten()
    assert flat.shape == (2, SIZES.total)
    assert torch.equal(flat[:, : SIZES.shape], params.shape)
    assert torch.equal(flat[:, -SIZES.light :], params.light)
    again = FaceParams.unflatten(flat, SIZES)
    for name, tensor in params.items():
        assert torch.equal(getattr(again, name), tensor)
    with pytest.raises(ValueError, match=r"expected \[B, 29\]"):
        FaceParams.unflatten(torch.zeros(2, SIZES.total + 1), SIZES)


def test_unflatten_of_a_leaf_passes_gradients_to_it() -> None:
    flat = torch.zeros(2, SIZES.total, requires_grad=True)
    params = FaceParams.unflatten(flat, SIZES)
    (params.camera.sum() * 2.0).backward()
    expected = torch.zeros(2, SIZES.total)
    start = SIZES.shape + SIZES.expression + SIZES.texture
    expected[:, start : start + SIZES.camera] = 2.0
    assert torch.equal(flat.grad, expected)


def test_detach_to_and_dict_round_trip() -> None:
    params = FaceParams(**{name: tensor.requires_grad_() for name, tensor in random_params().items()})
    detached = params.detach()
    assert all(not tensor.requires_grad for _, tensor in detached.items())
    assert torch.equal(detached.flatten(), params.flatten().detach())
    doubled = params.to(torch.float64)
    assert all(tensor.dtype == torch.float64 for _, tensor in doubled.items())
    moved = params.to("cpu")
    assert moved.shape.device.type == "cpu"
    rebuilt = FaceParams.from_dict(params.as_dict())
    assert torch.equal(rebuilt.flatten(), params.flatten())
    with pytest.raises(KeyError, match=r"missing groups \['light'\]"):
        FaceParams.from_dict({name: tensor for name, tensor in params.items() if name != "light"})


def test_groups_must_be_batched_alike() -> None:
    groups = random_params().as_dict()
    with pytest.raises(ValueError, match="camera: batch size 3 differs"):
        FaceParams(**{**groups, "camera": torch.zeros(3, 7)})
    with pytest.raises(ValueError, match=r"light: expected a \[B, K\] tensor"):
        FaceParams(**{**groups, "light": torch.zeros(2)})
