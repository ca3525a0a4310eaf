"""The shipped real-skin PCA texture prior (texture=pca_portraits): its file, that its mean looks like skin and that
its samples are varied, plausible skin; and the weighted PCA it is built with (missing texels)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from skimage.color import rgb2lab

from fastganfit.assetbuild.portrait_texture import components_for, weighted_pca
from fastganfit.cli import CONFIG_DIR
from fastganfit.data.synthetic import SyntheticFaceSource, SyntheticSettings
from fastganfit.reconstruction.graph import grey_where, greyscale_images
from fastganfit.texture.pca import PCATexture, load_portrait_texture_prior, portrait_texture_prior_path
from fastganfit.texture.procedural import ProceduralTexture

RESOLUTION = 128


@pytest.fixture(scope="module")
def prior() -> PCATexture:
    return load_portrait_texture_prior()


@pytest.fixture(scope="module")
def skin_texels() -> torch.Tensor:
    """``[R, R]`` bool: the front skin texels (lips, brows, eyes, ears, neck and scalp left out)."""
    procedural = ProceduralTexture.for_ict(RESOLUTION)
    return ((procedural.masks[0, 0] > 0.5) & (procedural.front[0, 0] > 0.5))


def skin_lab(textures: torch.Tensor, texels: torch.Tensor) -> np.ndarray:
    """``[B, 3]`` CIELAB of the median skin colour of each texture ``[B, 3, R, R]``."""
    colours = textures[:, :, texels].median(-1).values
    return rgb2lab(colours.numpy()[:, None, :], channel_axis=-1)[:, 0]


def test_the_asset_has_its_shapes_dtypes_and_provenance() -> None:
    path = portrait_texture_prior_path()
    with np.load(path) as data:
        mean, basis, variances, explained = data["mean"], data["basis"], data["variances"], data["explained"]
    count = len(variances)
    assert mean.shape == (3, RESOLUTION, RESOLUTION) and mean.dtype == np.float16
    assert basis.shape == (count, 3, RESOLUTION, RESOLUTION) and basis.dtype == np.float16
    assert 10 <= count <= 80 and (np.diff(variances) <= 0).all() and (variances > 0).all()
    assert explained.shape == (count,) and explained[-1] >= 0.85
    assert path.stat().st_size < 8e6
    provenance = json.loads(path.with_suffix(".json").read_text())
    assert provenance["photos"]["folders"] == ["pairs/A", "single"] and provenance["components"] == count
    skipped = [entry["photo"] for entry in provenance["photos"]["skipped"]]
    assert not any(photo.startswith(("pairs/B", "extra")) for photo in skipped)
    notes = path.with_suffix(".md").read_text()
    assert "public domain" in notes and "build_portrait_texture_prior.py" in notes


def test_the_mean_looks_like_skin(prior, skin_texels) -> None:
    lightness, red_green, yellow_blue = skin_lab(prior.mean[None], skin_texels)[0]
    red, green, blue = prior.mean[:, skin_texels].median(-1).values.tolist()
    assert red > green > blue
    assert 45 < lightness < 80 and 5 < red_green < 30 and 8 < yellow_blue < 35


def test_samples_are_varied_plausible_skin(prior, skin_texels) -> None:
    latents = torch.randn(64, prior.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        textures = prior(latents)
    lab = skin_lab(textures, skin_texels)
    plausible = (lab[:, 0] > 20) & (lab[:, 0] < 90) & (lab[:, 1] > 0) & (lab[:, 1] < 35) & (lab[:, 2] > 3)
    assert plausible.mean() >= 0.95
    assert lab[:, 0].std() > 4.0  # light and dark skin, not one tone
    difference = (textures[:, None] - textures[None]).abs().mean((2, 3, 4))
    assert difference[~torch.eye(64, dtype=torch.bool)].min() > 0.01  # no two samples alike


def test_the_config_loads_it_offline_at_any_resolution() -> None:
    config = OmegaConf.load(CONFIG_DIR / "texture" / "pca_portraits.yaml")
    small = instantiate(config, resolution=64)
    full = load_portrait_texture_prior()
    assert small.resolution == 64 and small.latent_dim == full.latent_dim
    latent = torch.randn(2, full.latent_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        down = torch.nn.functional.interpolate(full(latent), size=(64, 64), mode="bilinear", antialias=True)
        assert (small(latent) - down).abs().mean() < 0.01


def test_weighted_pca_recovers_low_rank_textures_with_missing_texels() -> None:
    generator = torch.Generator().manual_seed(0)
    side, count, rank = 8, 80, 3
    mean = torch.rand(3, side, side, generator=generator) * 0.5 + 0.25
    modes = torch.linalg.qr(torch.randn(3 * side * side, rank, generator=generator)).Q.T
    scales = torch.tensor([1.0, 0.6, 0.3])
    codes = torch.randn(count, rank, generator=generator) * scales
    textures = mean + (codes @ modes).view(count, 3, side, side)
    weight = (torch.rand(count, 1, side, side, generator=generator) > 0.3).float()  # 30 % of texels missing
    coverage = torch.ones(1, side, side)
    pca = weighted_pca(textures * weight, weight, coverage, components=rank, iterations=30)
    assert components_for(pca.explained, 0.99) == rank
    completed = pca.mean + ((textures - pca.mean).flatten(1) @ pca.basis.flatten(1).T @ pca.basis.flatten(1)).view_as(
        textures
    )
    assert (completed - textures).abs().max() < 1e-3  # the true subspace and mean, from partial textures
    truth = torch.linalg.eigvalsh(torch.cov(codes.T))
    assert torch.allclose(pca.variances.sort(descending=True).values, truth.sort(descending=True).values, rtol=1e-3)


def test_synthetic_faces_are_painted_by_the_prior(prior, skin_texels) -> None:
    """``settings.texture=pca_portraits`` (data=synthetic's default): the faces' true texture latents are the prior's,
    and their skin is the prior's skin; the set's settings (so its manifest) name the texture model."""
    settings = SyntheticSettings(texture="pca_portraits", texture_resolution=RESOLUTION)
    source = SyntheticFaceSource(seed=5, crop_size=64, settings=settings)
    sample = source.render([0])[0]
    latent = torch.from_numpy(sample["params"]["texture"])
    assert latent.shape == (prior.latent_dim,)
    with torch.no_grad():
        assert torch.equal(source.texture(latent[None]), prior(latent[None]))
    image = torch.from_numpy(sample["image"]).float()
    assert image.std() > 10  # a face was drawn, not a blank crop
    with pytest.raises(ValueError, match="texture must be one of"):
        SyntheticSettings(texture="gan_default")


def test_greyscale_photos_are_detected_and_rendered_grey() -> None:
    generator = torch.Generator().manual_seed(2)
    colour = torch.rand(2, 3, 16, 16, generator=generator)
    photos = torch.cat([colour[:1], colour[1:].mean(1, keepdim=True).expand(1, 3, 16, 16)])
    photos = (photos * 255).round() / 255  # 8-bit, as decoded
    grey = greyscale_images(photos)
    assert grey.tolist() == [False, True]
    render = torch.rand(2, 3, 16, 16, generator=generator)
    shown = grey_where(render, grey)
    assert torch.equal(shown[0], render[0])  # a colour photo's render is untouched
    assert (shown[1] - shown[1].mean(0)).abs().max() < 1e-6  # a greyscale photo's render is grey
    assert torch.allclose(shown[1, 0], (render[1] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0))
