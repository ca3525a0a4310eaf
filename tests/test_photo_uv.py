"""Photo UV textures against ground truth: synthetic faces rendered with known geometry, camera, light and UV
texture, extracted back with the true (and with roughly fitted) parameters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fastganfit.data.synthetic import SyntheticFaceSource, random_background, sample_generator, sample_params
from fastganfit.reconstruction.landmark_camera import camera_from_landmarks
from fastganfit.render.camera import YAW
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import SphericalHarmonicsLighting
from fastganfit.texture.photo_uv import PhotoTextureExtractor, pull_push_fill, smooth_ramp
from fastganfit.texture.uv_layout import rasterize_uv_layout

SIZE, RESOLUTION = 224, 128


@pytest.fixture(scope="module")
def source() -> SyntheticFaceSource:
    return SyntheticFaceSource(seed=3, crop_size=SIZE)


@pytest.fixture(scope="module")
def extractor(source: SyntheticFaceSource) -> PhotoTextureExtractor:
    renderer = source.renderer
    return PhotoTextureExtractor(source.model, renderer.camera, renderer.lighting, RESOLUTION, backend="torch")


def synthetic_faces(source: SyntheticFaceSource, indices: list[int], yaw: float | None = None) -> dict:
    """Ground truth of faces ``indices``: params, vertices, true UV textures and the renders over backgrounds."""
    params = [sample_params(source.model, source.texture.latent_dim, sample_generator(3, i), source.settings)
              for i in indices]  # fmt: skip
    batch = {name: torch.stack([p[name] for p in params]) for name in params[0]}
    if yaw is not None:
        batch["camera"][:, YAW] = yaw
    vertices = source.model(batch["shape"], batch["expression"])
    textures = source.texture(batch["texture"])
    backgrounds = torch.stack([random_background(SIZE, sample_generator(4, i)) for i in indices])
    return {**batch, "vertices": vertices, "textures": textures, "backgrounds": backgrounds}


def render(source: SyntheticFaceSource, faces: dict, textures: torch.Tensor, renderer: FaceRenderer | None = None,
           light: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    renderer = renderer or source.renderer
    light = faces["light"] if light is None else light
    return renderer(faces["vertices"], textures, faces["camera"], light, faces["backgrounds"]).image


def interior(confidence: torch.Tensor, margin: int = 2) -> torch.Tensor:
    """``[B, R, R]`` bool: fully confident texels at least ``margin`` texels from any less confident one (away
    from silhouettes and grazing angles)."""
    full = (confidence >= 0.999).float()
    return -F.max_pool2d(-full, 2 * margin + 1, 1, margin)[:, 0] > 0.5


def texel_error(albedo: torch.Tensor, truth: torch.Tensor, where: torch.Tensor) -> float:
    """Mean absolute error over channels and the texels ``where [B, R, R]``, in 1/255 units."""
    return float((albedo - truth).abs().mean(1)[where].mean() * 255)


@torch.no_grad()
def test_true_parameters_recover_the_true_albedo(source, extractor) -> None:
    faces = synthetic_faces(source, [0, 1, 2])
    image = render(source, faces, faces["textures"])
    out = extractor(image, faces["vertices"], faces["camera"], faces["light"], faces["textures"] * 0 + 0.5)
    where = interior(out.seen)
    coverage = where.float().mean((1, 2)) / extractor.coverage.mean()
    assert (coverage > 0.2).all()  # a fifth or more of the whole head's UV map is seen head-on in each picture
    error = texel_error(out.albedo, faces["textures"], where)
    print(f"true parameters: mean albedo error {error:.2f}/255 on {coverage.mean():.0%} of the map")
    assert error < 2.0
    # where nothing was seen or mirrored, the blend is the (colour-shifted) model texture, never the background
    assert (out.blended[(out.confidence == 0).expand_as(out.blended)] > 0.0).all()


@torch.no_grad()
def test_spherical_harmonics_light_is_divided_out(source) -> None:
    faces = synthetic_faces(source, [5])
    lighting = SphericalHarmonicsLighting()
    renderer = FaceRenderer.from_model(source.model, lighting=lighting, image_size=SIZE, backend="torch")
    light = torch.zeros(1, 27)
    light[0, 3:12] = torch.tensor([0.35, 0.3, 0.25, 0.2, 0.25, 0.3, -0.2, -0.15, -0.1])  # coloured, from one side
    image = render(source, faces, faces["textures"], renderer, light)
    extractor = PhotoTextureExtractor(source.model, renderer.camera, lighting, RESOLUTION, backend="torch")
    out = extractor(image, faces["vertices"], faces["camera"], light, faces["textures"])
    where = interior(out.seen)
    shaded = texel_error(image.new_zeros(1, 3, 1, 1) + F.interpolate(image, RESOLUTION), faces["textures"], where)
    assert texel_error(out.albedo, faces["textures"], where) < 2.0 < shaded


@torch.no_grad()
def test_landmark_fitted_camera_on_the_mean_face(source, extractor) -> None:
    """A rough fit (the mean face placed by the landmark camera, the true light): the error is reported and
    bounded; it is what misplaced geometry costs, the true parameters' error being under 2/255."""
    faces = synthetic_faces(source, [0, 1, 2])
    image = render(source, faces, faces["textures"])
    landmarks = source.renderer.camera.project(source.model.landmarks(faces["vertices"]), faces["camera"], (SIZE,) * 2)
    mean = source.model.mean.expand(3, -1, -1)
    camera = camera_from_landmarks(landmarks[..., :2], source.model.landmarks(mean[:1])[0], source.renderer.camera,
                                   (SIZE, SIZE))  # fmt: skip
    out = extractor(image, mean, camera, faces["light"], faces["textures"])
    error = texel_error(out.albedo, faces["textures"], interior(out.seen))
    print(f"mean face + landmark camera: mean albedo error {error:.2f}/255")
    assert 2.0 < error < 20.0


@torch.no_grad()
def test_mirror_completes_a_face_turned_45_degrees(source, extractor) -> None:
    faces = synthetic_faces(source, [7], yaw=math.radians(45.0))
    texture = faces["textures"]
    mirrored = F.grid_sample(texture, extractor.mirror_grid[None], mode="bilinear", align_corners=False)
    symmetric = torch.where(extractor.mirror_valid > 0, (texture + mirrored) / 2, texture)
    image = render(source, faces, symmetric)
    out = extractor(image, faces["vertices"], faces["camera"], faces["light"], symmetric * 0 + 0.5)
    seen, completed = interior(out.seen), interior(out.confidence)
    only_mirrored = completed & ~(out.seen[:, 0] > 0)
    # turned 45 degrees, one cheek is hidden: mirroring adds at least half again as many usable texels
    assert only_mirrored.sum() > 0.5 * seen.sum()
    error = texel_error(out.albedo, symmetric, only_mirrored)
    print(f"mirror-completed texels: mean albedo error {error:.2f}/255")
    assert error < 3.0
    without = PhotoTextureExtractor(
        source.model, source.renderer.camera, source.renderer.lighting, RESOLUTION, mirror=False, backend="torch"
    )
    alone = without(image, faces["vertices"], faces["camera"], faces["light"], symmetric)
    assert torch.equal(alone.confidence, alone.seen) and alone.confidence.sum() < 0.7 * out.confidence.sum()


def test_albedo_gradients_match_finite_differences(source) -> None:
    small = PhotoTextureExtractor(source.model, source.renderer.camera, source.renderer.lighting, 32, backend="torch")
    faces = synthetic_faces(source, [2])
    image = render(source, faces, faces["textures"]).double().detach()
    vertices, camera = faces["vertices"].double(), faces["camera"].double()
    light = faces["light"].double().requires_grad_(True)
    probe = torch.rand(1, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def objective(light_params: torch.Tensor) -> torch.Tensor:
        albedo, confidence = small.double().observe(image, vertices, camera, light_params)
        return (albedo * confidence * probe).sum()

    objective(light).backward()
    for index in (0, 4, 7):
        step = torch.zeros_like(light)
        step[0, index] = 1e-5
        numeric = (objective(light + step) - objective(light - step)) / 2e-5
        assert float(light.grad[0, index]) == pytest.approx(float(numeric.detach()), rel=1e-4, abs=1e-6)


def test_pull_push_keeps_known_texels_and_fills_a_constant_exactly() -> None:
    generator = torch.Generator().manual_seed(1)
    weight = (torch.rand(1, 1, 64, 64, generator=generator) > 0.9).float()
    values = torch.rand(1, 3, 64, 64, generator=generator)
    filled = pull_push_fill(values, weight)
    assert torch.allclose(filled[weight.expand_as(values) > 0], values[weight.expand_as(values) > 0])
    constant = torch.full_like(values, 0.3) * weight + torch.rand(1, 3, 64, 64, generator=generator) * (1 - weight)
    assert torch.allclose(pull_push_fill(constant, weight), torch.full_like(values, 0.3), atol=1e-6)
    assert smooth_ramp(torch.tensor([0.0, 0.2, 0.5, 0.9]), 0.2, 0.8).tolist() == pytest.approx([0, 0, 0.5, 1])


def test_bad_inputs_are_named(source, extractor) -> None:
    with pytest.raises(ValueError, match="min_cosine < full_cosine"):
        PhotoTextureExtractor(source.model, source.renderer.camera, source.renderer.lighting, 32, 0.5, 0.4)
    with pytest.raises(ValueError, match=r"image must be \[B, 3, H, W\]"):
        extractor(torch.zeros(1, 1, 8, 8), torch.zeros(1, 9409, 3), torch.zeros(1, 7), torch.zeros(1, 10),
                  torch.zeros(1, 3, 8, 8))  # fmt: skip


@torch.no_grad()
def test_a_sharper_image_of_the_same_fit_gives_the_same_albedo(source, extractor) -> None:
    """Camera parameters do not depend on the image size: the texture taken from a 3x larger render of the same
    face (what fit.py's detail crops are) matches the one taken from the crop-sized render."""
    faces = synthetic_faces(source, [4])
    large = FaceRenderer.from_model(source.model, image_size=3 * SIZE, backend="torch")
    backgrounds = F.interpolate(faces["backgrounds"], scale_factor=3, mode="nearest")
    sharp = large(faces["vertices"], faces["textures"], faces["camera"], faces["light"], backgrounds).image
    small = render(source, faces, faces["textures"])
    args = (faces["vertices"], faces["camera"], faces["light"], faces["textures"])
    out_sharp, out_small = extractor(sharp, *args), extractor(small, *args)
    where = interior(out_small.seen) & interior(out_sharp.seen)
    assert where.float().mean() > 0.15
    assert texel_error(out_sharp.albedo, faces["textures"], where) < 2.0
    assert texel_error(out_sharp.albedo, out_small.albedo, where) < 2.0


@torch.no_grad()
def test_brightness_only_keeps_the_photos_colour_balance(source, extractor) -> None:
    faces = synthetic_faces(source, [6])
    renderer = source.renderer
    neutral = PhotoTextureExtractor(
        source.model, renderer.camera, renderer.lighting, RESOLUTION, light_colour=False, backend="torch"
    )
    grey, coloured = torch.zeros(1, 10), torch.zeros(1, 10)
    grey[0, :6] = torch.tensor([-0.4, -0.4, -0.4, 0.5, 0.5, 0.5])  # white light: nothing to keep
    coloured[0, :6] = torch.tensor([-0.2, -0.5, -0.6, 0.6, 0.4, 0.3])  # warm light, no highlight
    args = (faces["vertices"], faces["camera"])
    for light in (grey, coloured):
        image = render(source, faces, faces["textures"], light=light)
        exact, kept = extractor(image, *args, light, faces["textures"]), neutral(image, *args, light, faces["textures"])
        where = interior(exact.seen)
        if light is grey:
            assert texel_error(kept.albedo, exact.albedo, where) < 1e-3
        else:  # the warm cast stays: red over blue is the photo's, not the true albedo's
            ratio = (kept.albedo[:, 0] / kept.albedo[:, 2])[where].mean()
            true_ratio = (faces["textures"][:, 0] / faces["textures"][:, 2])[where].mean()
            assert texel_error(exact.albedo, faces["textures"], where) < 2.0
            assert ratio > 1.3 * true_ratio


def checkerboard(size: int, tile: int = 8) -> torch.Tensor:
    """``[3, size, size]``: a blue and green checkerboard, a textured background no skin looks like."""
    index = torch.arange(size) // tile
    odd = ((index[:, None] + index[None, :]) % 2).float()
    blue, green = torch.tensor([0.15, 0.3, 0.75]), torch.tensor([0.2, 0.65, 0.25])
    return blue.view(3, 1, 1) * odd + green.view(3, 1, 1) * (1 - odd)


@torch.no_grad()
def test_cleaning_keeps_hair_and_background_out_of_skin_texels(source, extractor) -> None:
    """Known masks: hair painted on the forehead and scalp of the true texture (a UV mask), and a strip of the
    photo over one cheek replaced by a checkerboard background (as when a fitted silhouette overhangs the face).
    The photo texture must not take those texels (the model texture fills them, without a seam) and must keep the
    clean skin."""
    faces = synthetic_faces(source, [0, 1])
    faces["backgrounds"] = checkerboard(SIZE).expand(2, -1, -1, -1)
    model, layout = source.model, rasterize_uv_layout(source.model, RESOLUTION)
    brows = model.mean[model.landmark_indices][17:27, 1].mean()
    hair = (layout.positions[1] > brows + 25.0) & (layout.coverage[0] > 0)
    shaved = faces["textures"]
    hairy = torch.where(hair, torch.tensor([0.16, 0.11, 0.08]).view(1, 3, 1, 1), shaved)
    image = render(source, faces, hairy)
    # the background strip: pixels left of halfway between the nose tip and the left jaw landmarks
    points = source.renderer.camera.project(model.landmarks(faces["vertices"]), faces["camera"], (SIZE,) * 2)
    edge = (points[:, 30, 0] + points[:, 2, 0]) / 2
    strip = torch.arange(SIZE).view(1, 1, 1, SIZE) < edge.view(-1, 1, 1, 1)
    image = torch.where(strip, faces["backgrounds"], image)
    view = extractor.camera.to_view(faces["vertices"], faces["camera"])
    texel_points = extractor.texel_attributes(view).flatten(2).transpose(1, 2)
    texel_x = extractor.camera.view_to_pixels(texel_points, faces["camera"], (SIZE, SIZE))[..., 0]
    in_strip = (texel_x < edge.view(-1, 1)).view(-1, RESOLUTION, RESOLUTION)
    raw = PhotoTextureExtractor(model, source.renderer.camera, source.renderer.lighting, RESOLUTION, clean=False,
                                backend="torch")  # fmt: skip
    args = (image, faces["vertices"], faces["camera"], faces["light"], shaved)
    cleaned, uncleaned = extractor(*args), raw(*args)
    skin = (extractor.trust.skin[0, 0] > 0.5) & (uncleaned.seen[:, 0] > 0.9)
    hair_texels, background_texels = skin & hair, skin & in_strip & ~hair
    clean_texels = skin & ~hair & ~in_strip
    assert hair_texels.sum() > 200 and background_texels.sum() > 200 and clean_texels.sum() > 1000
    kept = cleaned.seen[:, 0]
    assert (kept[hair_texels] < 0.5).float().mean() > 0.95
    assert (kept[background_texels] < 0.5).float().mean() > 0.95
    assert (kept[clean_texels] > 0.9).float().mean() > 0.95
    # where hair or background was, the blended texture is the skin again (the model's, moved to the photo's colour)
    dirty = hair_texels | background_texels
    after, before = texel_error(cleaned.blended, shaved, dirty), texel_error(uncleaned.blended, shaved, dirty)
    print(f"hair and background texels: blended error {before:.1f}/255 without cleaning, {after:.1f}/255 with")
    assert after < 20.0 and after < before / 4
    assert texel_error(cleaned.blended, shaved, clean_texels) < 2.0
