"""PCATexture: the linear UV texture model and its .npz loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from asset_files import pca_texture_arrays, write_npz
from hydra.utils import instantiate
from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from fastganfit.texture.pca import PCATexture, TextureFormatError

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf" / "texture"


def with_paths(config: DictConfig, **files: str | None) -> DictConfig:
    """``config`` (one component's YAML) as a composed config has it: next to the paths group
    (``${paths.<key>}``), its defaults with ``files`` set."""
    paths = OmegaConf.merge(OmegaConf.load(CONF.parent / "paths" / "default.yaml"), files)
    return OmegaConf.create({"paths": paths, "component": config}).component


R, K = 4, 3
VARIANCES = np.array([4.0, 1.0, 0.25], np.float32)


def model_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny model (R x R texels, K modes with VARIANCES)."""
    return pca_texture_arrays(seed, R, tuple(VARIANCES))


@pytest.fixture
def arrays() -> dict[str, np.ndarray]:
    return model_arrays()


@pytest.fixture
def model(tmp_path: Path, arrays: dict[str, np.ndarray]) -> PCATexture:
    return PCATexture.from_npz(write_npz(tmp_path / "pca.npz", **arrays))


def scaled_modes(arrays: dict[str, np.ndarray]) -> torch.Tensor:
    """``[K, 3, R, R]``: each mode times its standard deviation."""
    return torch.from_numpy(arrays["basis"] * np.sqrt(arrays["variances"])[:, None, None, None])


def test_shapes_and_interface(model: PCATexture) -> None:
    assert (model.latent_dim, model.resolution) == (K, R)
    latent = model.zero_latent(5)
    assert latent.shape == (5, K) and not latent.any()
    texture = model(torch.randn(2, K))
    assert texture.shape == (2, 3, R, R) and texture.dtype == torch.float32
    with pytest.raises(ValueError, match=r"latent: expected \[B, 3\], got \[2, 4\]"):
        model(torch.zeros(2, K + 1))


def test_zero_latent_gives_the_mean(model: PCATexture, arrays: dict[str, np.ndarray]) -> None:
    texture = model(model.zero_latent(2))
    torch.testing.assert_close(texture, torch.from_numpy(arrays["mean"]).expand(2, -1, -1, -1))


def test_modes_are_scaled_by_standard_deviation_and_linear(model: PCATexture, arrays: dict[str, np.ndarray]) -> None:
    mean = torch.from_numpy(arrays["mean"])
    offsets = model(torch.eye(K)) - mean
    torch.testing.assert_close(offsets, scaled_modes(arrays), rtol=1e-4, atol=1e-6)
    z1, z2 = torch.randn(4, K).clamp(-2, 2), torch.randn(4, K).clamp(-2, 2)
    combined = model(0.3 * z1 + 0.5 * z2) - mean
    torch.testing.assert_close(combined, 0.3 * (model(z1) - mean) + 0.5 * (model(z2) - mean), rtol=1e-4, atol=1e-6)


def test_regulariser_is_half_squared_norm(model: PCATexture) -> None:
    latent = torch.tensor([[1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(model.latent_regulariser(latent), torch.tensor([4.5, 0.0]))


def test_gradients_reach_the_latent(model: PCATexture, arrays: dict[str, np.ndarray]) -> None:
    latent = torch.randn(2, K).clamp(-2, 2).requires_grad_(True)
    weights = torch.rand(3, R, R)
    (model(latent) * weights).sum().backward()
    expected = (scaled_modes(arrays) * weights).sum(dim=(1, 2, 3))
    torch.testing.assert_close(latent.grad, expected.expand(2, -1), rtol=1e-4, atol=1e-6)


def test_output_is_clamped_and_saturated_texels_pass_no_gradient(tmp_path: Path) -> None:
    mean = np.full((3, R, R), 0.5, np.float32)
    basis = np.zeros((1, 3, R, R), np.float32)
    basis[0, 0, 0, 0], basis[0, 1, 0, 0] = 1.0, 0.1
    model = PCATexture.from_npz(write_npz(tmp_path / "m.npz", mean=mean, basis=basis, variances=np.ones(1)))
    latent = torch.full((1, 1), 2.0, requires_grad=True)
    texture = model(latent)
    assert texture.min() >= 0 and texture.max() <= 1
    assert texture[0, 0, 0, 0] == 1.0 and texture[0, 1, 0, 0].item() == pytest.approx(0.7)
    texture[0, 0, 0, 0].backward(retain_graph=True)
    assert latent.grad.item() == 0.0
    latent.grad = None
    texture[0, 1, 0, 0].backward()
    assert latent.grad.item() == pytest.approx(0.1)


def test_num_components_keeps_the_leading_modes(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    path = write_npz(tmp_path / "pca.npz", **arrays)
    model = PCATexture.from_npz(path, num_components=2)
    assert model.latent_dim == 2
    latent = torch.tensor([[1.0, -1.0]])
    expected = torch.from_numpy(arrays["mean"]) + (scaled_modes(arrays)[:2] * latent.view(2, 1, 1, 1)).sum(0)
    torch.testing.assert_close(model(latent)[0], expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"pca\.npz: asked for 4 texture components, the file has 3"):
        PCATexture.from_npz(path, num_components=4)


def test_channels_last_and_uint8_mean(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    mean_uint8 = np.round(arrays["mean"] * 255).astype(np.uint8)
    quantised = {**arrays, "mean": mean_uint8.astype(np.float32) / 255}
    variants = {  # file contents, and the channels-first float model they must equal
        "hwc.npz": ({"mean": np.moveaxis(arrays["mean"], 0, -1), "basis": np.moveaxis(arrays["basis"], 1, -1)}, arrays),
        "uint8.npz": ({"mean": mean_uint8, "basis": arrays["basis"] * 255}, quantised),
        "both.npz": (
            {"mean": np.moveaxis(mean_uint8, 0, -1), "basis": np.moveaxis(arrays["basis"] * 255, 1, -1)},
            quantised,
        ),
    }
    latent = torch.randn(3, K).clamp(-2, 2)
    for name, (variant, reference) in variants.items():
        model = PCATexture.from_npz(write_npz(tmp_path / name, variances=arrays["variances"], **variant))
        expected = PCATexture.from_npz(write_npz(tmp_path / f"reference-{name}", **reference))
        assert (model.latent_dim, model.resolution) == (K, R)
        torch.testing.assert_close(model(latent), expected(latent), rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mean": None}, r"bad\.npz: missing key 'mean'"),
        ({"basis": None}, r"bad\.npz: missing key 'basis'"),
        ({"variances": None}, r"bad\.npz: missing key 'variances'"),
        ({"mean": np.zeros((3, R, R + 1), np.float32)}, r"bad\.npz: key 'mean' has shape \[3, 4, 5\]"),
        ({"mean": np.zeros((3, R * R), np.float32)}, r"bad\.npz: key 'mean' has shape \[3, 16\]"),
        ({"basis": np.zeros((K, 3, 8, 8), np.float32)}, r"bad\.npz: key 'basis' has shape \[3, 3, 8, 8\]"),
        ({"basis": np.zeros((3, R, R), np.float32)}, r"bad\.npz: key 'basis' has shape \[3, 4, 4\]"),
        ({"basis": np.zeros((K, 3, R, R), np.int16)}, r"bad\.npz: key 'basis' has dtype int16"),
        ({"variances": np.ones(K + 1)}, r"bad\.npz: key 'variances' has shape \[4\], expected \[3\]"),
        ({"variances": np.array([1.0, 0.0, 1.0])}, r"bad\.npz: key 'variances' must be .*positive; component 1"),
        ({"variances": np.array([1.0, 1.0, -2.0])}, r"bad\.npz: key 'variances' must be .*positive; component 2"),
        ({"mean": np.full((3, R, R), 128.0, np.float32)}, r"bad\.npz: key 'mean' has values in \[128, 128\]"),
        ({"mean": np.full((3, R, R), 128, np.int32)}, r"bad\.npz: key 'mean' has dtype int32"),
        ({"basis": np.full((K, 3, R, R), np.nan, np.float32)}, r"bad\.npz: key 'basis' has non-finite values"),
    ],
)
def test_format_errors_name_file_and_key(tmp_path: Path, arrays: dict[str, np.ndarray], change, message) -> None:
    arrays = {**arrays, **change}
    path = write_npz(tmp_path / "bad.npz", **{key: value for key, value in arrays.items() if value is not None})
    with pytest.raises(TextureFormatError, match=message):
        PCATexture.from_npz(path)


def test_unreadable_files(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    with pytest.raises(FileNotFoundError, match=r"PCA texture file .*nope\.npz does not exist"):
        PCATexture.from_npz(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(TextureFormatError, match=r"text\.npz: cannot read as \.npz"):
        PCATexture.from_npz(tmp_path / "text.npz")
    np.save(tmp_path / "single.npy", arrays["mean"])
    with pytest.raises(TextureFormatError, match=r"single\.npy: holds a single array"):
        PCATexture.from_npz(tmp_path / "single.npy")


def test_constructor_checks_shapes_and_variances(arrays: dict[str, np.ndarray]) -> None:
    mean, basis = torch.from_numpy(arrays["mean"]), torch.from_numpy(arrays["basis"])
    with pytest.raises(ValueError, match=r"basis: expected \[2, 3, 4, 4\], got \[3, 3, 4, 4\]"):
        PCATexture(mean, basis, torch.ones(2))
    with pytest.raises(ValueError, match="variances must all be positive"):
        PCATexture(mean, basis, torch.tensor([1.0, 0.0, 1.0]))


def test_hydra_config_instantiates(tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    config = OmegaConf.load(CONF / "pca.yaml")
    with pytest.raises(MissingMandatoryValue):  # the paths group's ??? (no local paths file)
        instantiate(with_paths(config))
    path = str(write_npz(tmp_path / "pca.npz", **arrays))
    model = instantiate(with_paths(config, texture_pca=path), num_components=1)
    assert isinstance(model, PCATexture) and model.latent_dim == 1
