"""Light and albedo: the light's chroma and its regulariser, the colour benchmark's metrics, coloured synthetic
light and the regressor's colour heads."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from fastganfit.benchmarks.colour import (
    albedo_delta_e,
    delta_e,
    front_skin_texels,
    hue,
    light_chroma_error,
    masked_delta_e,
)
from fastganfit.data.synthetic import (
    SyntheticFaceSource,
    SyntheticSettings,
    sample_generator,
    sample_params,
    tint_light,
)
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.params import FaceParams, ParamSizes
from fastganfit.reconstruction.losses import GANFitLoss, light_chroma_regulariser
from fastganfit.regression.regressor import (
    COLOUR_FEATURES,
    COLOUR_GAIN,
    COLOUR_REFERENCE,
    SKIN_POINTS,
    Regressor,
    face_colour_features,
)
from fastganfit.render.lighting import PhongLighting, SphericalHarmonicsLighting, hemisphere_normals, light_colour
from fastganfit.texture.procedural import ProceduralTexture

SIZES = ParamSizes(shape=3, expression=2, texture=4, camera=7, light=10)


def phong(ambient: tuple[float, ...], diffuse: tuple[float, ...] = (0.0, 0.0, 0.0)) -> torch.Tensor:
    light = torch.zeros(1, 10)
    light[0, 0:3] = torch.tensor(ambient) - 1.0
    light[0, 3:6] = torch.tensor(diffuse)
    return light


def test_phong_chroma_is_the_colours_away_from_grey() -> None:
    lighting = PhongLighting()
    grey = phong((0.6, 0.6, 0.6), (0.3, 0.3, 0.3))
    assert torch.equal(lighting.chroma(grey), torch.zeros(1, 6))
    tinted = phong((1.2, 1.0, 0.8), (0.0, 0.3, 0.0))
    expected = torch.tensor([[0.2, 0.0, -0.2, -0.1, 0.2, -0.1]])
    assert torch.allclose(lighting.chroma(tinted), expected, atol=1e-6)
    # the regulariser: mean square over the six entries, with its gradient
    tinted.requires_grad_(True)
    value = light_chroma_regulariser(tinted, lighting)
    assert torch.allclose(value, expected.square().mean(1))
    value.sum().backward()
    assert tinted.grad[0, 6:].abs().sum() == 0 and tinted.grad[0, :6].abs().sum() > 0
    with pytest.raises(ValueError, match=r"expected \[B, 10\]"):
        lighting.chroma(torch.zeros(1, 9))


def test_sh_chroma_is_zero_for_grey_irradiance() -> None:
    lighting = SphericalHarmonicsLighting()
    grey = torch.randn(2, 9, 1).expand(-1, -1, 3).reshape(2, 27)
    assert torch.allclose(lighting.chroma(grey), torch.zeros(2, 27), atol=1e-6)
    coloured = grey.clone().view(2, 9, 3)
    coloured[:, 0, 0] += 0.3
    chroma = lighting.chroma(coloured.reshape(2, 27)).view(2, 9, 3)
    assert torch.allclose(chroma[:, 0], torch.tensor([0.2, -0.1, -0.1]).expand(2, 3), atol=1e-6)
    assert torch.allclose(chroma[:, 1:], torch.zeros(2, 8, 3), atol=1e-6)


def test_ganfit_loss_light_chroma_term_needs_the_lighting() -> None:
    light = phong((1.2, 1.0, 0.8))
    params = FaceParams(**{**FaceParams.zeros(SIZES, 1).as_dict(), "light": light})
    loss = GANFitLoss(light_chroma=2.0)
    total, logs = loss(params, lighting=PhongLighting())
    assert torch.allclose(total, 2.0 * torch.tensor([0.2, 0.0, -0.2]).square().sum() / 6)
    assert set(logs) == {"light_chroma", "total"}
    with pytest.raises(ValueError, match=r"light_chroma term \(weight 2.0\) needs \['lighting'\]"):
        loss(params)


def test_delta_e_matches_skimage_and_is_zero_for_equal_colours() -> None:
    first, second = np.array([[0.7, 0.5, 0.4]]), np.array([[0.6, 0.5, 0.45]])
    expected = deltaE_ciede2000(rgb2lab(first[None])[0], rgb2lab(second[None])[0])
    assert delta_e(first, second) == pytest.approx(expected)
    assert 3.0 < float(expected[0]) < 15.0
    assert delta_e(first, first)[0] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="colour arrays"):
        delta_e(first, second[:, :2])


def test_masked_delta_e_averages_inside_the_mask_only() -> None:
    target = torch.full((2, 3, 4, 4), 0.5)
    predicted = target.clone()
    predicted[0, :, :2] = torch.tensor([0.6, 0.5, 0.5]).view(3, 1, 1)  # rows 0-1 differ
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2] = 1.0  # only the changed pixels
    mask[1, :, 3] = 1.0
    values = masked_delta_e(predicted, target, mask)
    single = delta_e(np.array([0.6, 0.5, 0.5]), np.array([0.5, 0.5, 0.5]))
    assert values[0] == pytest.approx(float(single)) and values[1] == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(masked_delta_e(predicted, target, torch.zeros(2, 1, 4, 4))[0])
    with pytest.raises(ValueError, match="mask must be"):
        masked_delta_e(predicted, target, mask[:, :, :2])


def test_hue_is_the_median_lab_hue_angle_inside_the_mask() -> None:
    skin, yellow = (0.8, 0.6, 0.5), (0.8, 0.75, 0.3)
    images = torch.tensor(yellow).view(1, 3, 1, 1).repeat(2, 1, 4, 4)
    images[0, :, :3] = torch.tensor(skin).view(3, 1, 1)  # three rows of skin, one of yellow
    mask = torch.ones(2, 1, 4, 4)
    mask[1, :, :3] = 0.0  # the second image: the yellow row only
    lab = rgb2lab(np.array([skin, yellow]), channel_axis=-1)
    expected = np.degrees(np.arctan2(lab[:, 2], lab[:, 1]))
    assert hue(images, mask) == pytest.approx(expected, abs=1e-4)
    assert 30 < expected[0] < 90 < expected[1]  # skin lies between red (0) and yellow (about 90); the yellow beyond


def test_albedo_delta_e_on_procedural_skin() -> None:
    texture = ProceduralTexture.for_ict(32)
    texels = front_skin_texels(texture)
    assert texels.dtype == torch.bool and texels.shape == (1, 1, 32, 32)
    assert 0.1 < texels.float().mean() < 0.9  # the front skin, not the whole map
    latent = torch.zeros(2, texture.latent_dim)
    latent[1, 0] = 1.0  # one standard deviation darker / lighter
    truth = texture(latent)
    errors = albedo_delta_e(texture(torch.zeros(2, texture.latent_dim)), truth, texels)
    assert errors[0] == pytest.approx(0.0, abs=1e-6) and 5.0 < errors[1] < 15.0
    # a lower-resolution prediction is resized to the truth's
    assert albedo_delta_e(texture(latent)[:, :, ::2, ::2], truth, texels)[1] < 2.0


def test_light_colour_and_chroma_error() -> None:
    normals = hemisphere_normals(64)
    assert torch.allclose(normals.norm(dim=1), torch.ones(64), atol=1e-5) and bool((normals[:, 2] > 0).all())
    lighting = PhongLighting()
    lights = torch.cat([phong((1.0, 1.0, 1.0)), phong((1.2, 1.0, 0.8)), phong((0.5, 0.5, 0.5))])
    colours = light_colour(lighting, lights)
    assert torch.allclose(colours, torch.tensor([[1.0, 1.0, 1.0], [1.2, 1.0, 0.8], [0.5, 0.5, 0.5]]), atol=1e-6)
    errors = light_chroma_error(colours, colours[:1].expand(3, 3))
    assert errors == pytest.approx([0.0, 100 * math.sqrt(0.08), 0.0], abs=1e-4)  # intensity alone costs nothing
    sh = light_colour(SphericalHarmonicsLighting(), torch.zeros(1, 27))
    assert torch.allclose(sh, torch.ones(1, 3), atol=1e-5)


def test_tint_light_keeps_the_intensity_and_adds_a_known_colour() -> None:
    light = phong((0.6, 0.6, 0.6), (0.4, 0.4, 0.4))[0]
    tinted = tint_light(light, 0.3, torch.Generator().manual_seed(0))
    ambient, diffuse = 1.0 + tinted[0:3], tinted[3:6]
    assert ambient.mean() == pytest.approx(0.6) and diffuse.mean() == pytest.approx(0.4)
    relative = ambient / 0.6 - 1.0
    assert torch.allclose(diffuse / 0.4 - 1.0, relative, atol=1e-6)
    assert 0.15 - 1e-6 <= float(relative.norm()) <= 0.3 + 1e-6


def test_light_tint_zero_leaves_the_synthetic_faces_unchanged() -> None:
    plain = SyntheticFaceSource(5, 32).render([0])[0]
    again = SyntheticFaceSource(5, 32, SyntheticSettings(light_tint=0.0)).render([0])[0]
    tinted = SyntheticFaceSource(5, 32, SyntheticSettings(light_tint=0.3)).render([0])[0]
    assert np.array_equal(plain["image"], again["image"])
    for name in ("shape", "expression", "texture", "camera"):  # the same face, only the light differs
        assert np.array_equal(plain["params"][name], tinted["params"][name])
    chroma = PhongLighting().chroma(torch.from_numpy(tinted["params"]["light"])[None])
    plain_chroma = PhongLighting().chroma(torch.from_numpy(plain["params"]["light"])[None])
    assert chroma.abs().max() > 0.05 > plain_chroma.abs().max()


def test_coloured_light_fraction_tints_about_that_share_of_the_faces() -> None:
    """``coloured_light_fraction``: each face is tinted with that chance, from the tint's own stream (the faces'
    geometry and texture are the same as without a tint); 1 tints every face, 0 none."""
    def tinted(fraction: float) -> list[bool]:
        settings = SyntheticSettings(light_tint=0.3, coloured_light_fraction=fraction)
        lights = torch.stack([sample_params(ict, 43, sample_generator(3, index), settings)["light"] for index in
                              range(200)])
        return (PhongLighting().chroma(lights).abs().amax(1) > 0.05).tolist()

    ict = MorphableModel.ict()
    assert sum(tinted(1.0)) == 200 and sum(tinted(0.0)) == 0
    assert 70 <= sum(tinted(0.5)) <= 130
    with pytest.raises(ValueError, match="coloured_light_fraction must be in"):
        SyntheticSettings(coloured_light_fraction=1.5)


def test_face_colour_features_of_a_plain_face() -> None:
    image = torch.zeros(1, 3, 64, 64)
    image[:, 0], image[:, 1], image[:, 2] = 0.7, 0.5, 0.4
    landmarks = 16 + 32 * torch.rand(1, 68, 2)
    features = face_colour_features(image, landmarks)
    assert features.shape == (1, COLOUR_FEATURES)
    assert torch.allclose(features, torch.tensor([[0.7, 0.5, 0.4, 0.0, 0.0, 0.0]]), atol=1e-6)
    # a half-dark image: the spread shows it, and the gradient reaches the image
    image = image.clone().requires_grad_(True)
    darker = image * torch.cat([torch.ones(1, 1, 64, 32), 0.5 * torch.ones(1, 1, 64, 32)], dim=3)
    points = torch.tensor([[10.0, 30.0]]).expand(68, 2).clone()
    points[[pair[0] for pair in SKIN_POINTS]] = torch.tensor([50.0, 30.0])
    face_colour_features(darker, points[None])[0, :3].sum().backward()
    assert image.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="face_colour_features"):
        face_colour_features(image[:, :2], landmarks)


def test_regressor_colour_heads_start_at_zero_and_learn() -> None:
    regressor = Regressor(SIZES, [], heatmap_backbone=None, landmark_features=5, feature_dim=8, hidden=8,
                          colour_input=True)
    assert sorted(regressor.colour_heads) == ["light", "texture"]
    landmarks, colour = torch.randn(2, 5), torch.rand(2, COLOUR_FEATURES)
    params = regressor([], None, landmarks, colour)
    assert all(bool((value == 0).all()) for value in params.as_dict().values())
    params.texture.sum().backward()
    assert regressor.colour_heads["texture"].weight.grad.abs().sum() > 0
    with torch.no_grad():
        regressor.colour_heads["light"].weight[0, 0] = 1.0
    moved = regressor([], None, landmarks, colour)
    expected = (colour[:, 0] - COLOUR_REFERENCE[0]) * COLOUR_GAIN
    assert torch.allclose(moved.light[:, 0], expected, atol=1e-5) and bool((moved.texture == 0).all())
    with pytest.raises(ValueError, match="face colour features"):
        regressor([], None, landmarks)
    plain = Regressor(SIZES, [], heatmap_backbone=None, landmark_features=5, feature_dim=8, hidden=8)
    assert len(plain.colour_heads) == 0 and plain([], None, landmarks).light.shape == (2, 10)
