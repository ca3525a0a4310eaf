"""The light's brightness: ``lighting.brighter``, the light intensity prior (GANFit++'s colour stage) and the
regressor's exposure match (the regressed light made as bright as the photo)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tiny_checkpoint import write_tiny_checkpoint

from fastganfit.data.random_faces import sample_random_faces
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.optimise import regress
from fastganfit.params import FaceParams
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.perception.identity import dlib_identity
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.reconstruction.losses import GANFitLoss, light_intensity_regulariser
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.exposure import GAIN_RANGE, exposure_gain, match_exposure
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import PhongLighting, SphericalHarmonicsLighting, light_colour
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 64


def random_shading_inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Albedo, unit normals facing the camera and view directions ``[B, 3, 4, 4]``."""
    albedo = torch.rand(batch, 3, 4, 4)
    towards_camera = torch.tensor([0.0, 0.0, 2.0])[:, None, None]
    normals = torch.nn.functional.normalize(torch.randn(batch, 3, 4, 4) + towards_camera, dim=1)
    view = torch.nn.functional.normalize(normals + 0.3 * torch.randn(batch, 3, 4, 4), dim=1)
    return albedo, normals, view


@pytest.mark.parametrize("lighting", [PhongLighting(), SphericalHarmonicsLighting()], ids=["phong", "sh"])
def test_brighter_light_scales_every_shaded_colour(lighting: torch.nn.Module) -> None:
    albedo, normals, view = random_shading_inputs(3)
    params = 0.2 * torch.randn(3, lighting.num_params)  # ambient stays positive: Phong clamps it at 0
    gain = torch.tensor([0.6, 1.0, 1.7])
    shaded = lighting.shade(albedo, normals, view, params)
    brighter = lighting.shade(albedo, normals, view, lighting.brighter(params, gain))
    assert torch.allclose(brighter, shaded * gain[:, None, None, None], atol=1e-5)
    assert torch.allclose(lighting.chroma(lighting.brighter(params, torch.ones(3))), lighting.chroma(params), atol=1e-6)


def test_light_intensity_prior_is_the_squared_log_brightness() -> None:
    lighting = PhongLighting()
    gain = torch.tensor([1.0, 2.0, 0.5])
    light = lighting.brighter(torch.zeros(3, 10), gain)
    assert light_intensity_regulariser(light, lighting) == pytest.approx([0.0, math.log(2) ** 2, math.log(2) ** 2],
                                                                        abs=1e-6)  # fmt: skip
    tinted = torch.zeros(1, 10)
    tinted[0, 0:3] = torch.tensor([0.2, 0.0, -0.2])  # a coloured light of mean brightness 1 costs nothing here
    assert light_intensity_regulariser(tinted, lighting) == pytest.approx([0.0], abs=1e-6)
    assert light_intensity_regulariser(light, lighting, target=0.5) == pytest.approx(
        [math.log(2) ** 2, 4 * math.log(2) ** 2, 0.0], abs=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match="target must be positive"):
        light_intensity_regulariser(light, lighting, target=0.0)
    sh = SphericalHarmonicsLighting()
    assert light_intensity_regulariser(sh.brighter(torch.zeros(1, 27), torch.tensor([1.5])), sh) == pytest.approx(
        [math.log(1.5) ** 2], abs=1e-5)  # fmt: skip


def test_light_intensity_prior_gradient_matches_finite_differences() -> None:
    lighting = PhongLighting()
    light = (0.3 * torch.randn(2, 10, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda value: light_intensity_regulariser(value, lighting), (light,))


def test_light_intensity_term_weighs_into_ganfit_loss() -> None:
    lighting = PhongLighting()
    light = lighting.brighter(torch.zeros(2, 10), torch.tensor([1.0, math.e]))
    params = FaceParams(torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 4), torch.zeros(2, 7), light)
    total, terms = GANFitLoss(light_intensity=2.0)(params, lighting=lighting)
    assert terms["light_intensity"] == pytest.approx(0.5) and total == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"light_intensity term .* needs \['lighting'\]"):
        GANFitLoss(light_intensity=1.0)(params)
    _, terms = GANFitLoss(light_intensity=1.0, light_intensity_target=math.e)(params, lighting=lighting)
    assert terms["light_intensity"] == pytest.approx(0.5)  # (0 - 1)^2 and (1 - 1)^2
    with pytest.raises(ValueError, match="light_intensity_target must be positive"):
        GANFitLoss(light_intensity=1.0, light_intensity_target=-1.0)


def test_exposure_gain_is_the_brightness_ratio_at_the_skin_points() -> None:
    landmarks = torch.rand(2, 68, 2) * 40 + 12
    render = torch.rand(2, 3, SIZE, SIZE) * 0.5 + 0.2
    assert exposure_gain(render, render * 1.4, landmarks) == pytest.approx([1.4, 1.4], rel=1e-5)
    assert exposure_gain(render, render * 9.0, landmarks) == pytest.approx([GAIN_RANGE[1]] * 2)  # clamped
    assert exposure_gain(torch.zeros_like(render), render, landmarks) == pytest.approx([GAIN_RANGE[1]] * 2)


@pytest.fixture(scope="module")
def graph(ict_model: MorphableModel) -> FaceReconstructionGraph:
    renderer = FaceRenderer.from_model(ict_model, image_size=SIZE, backend="torch")
    return FaceReconstructionGraph(ict_model, ProceduralTexture(ict_model, 32), renderer, dlib_identity(layers=[]),
                                   GaussianHeatmaps(SIZE, 32))  # fmt: skip


def test_exposure_match_recovers_a_known_exposure(graph: FaceReconstructionGraph, ict_model: MorphableModel) -> None:
    faces = sample_random_faces(ict_model, 3, torch.Generator().manual_seed(3), max_yaw_degrees=20.0)
    params = FaceParams(faces.shape, faces.expression, torch.zeros(3, graph.texture.latent_dim), faces.camera,
                        faces.light)  # fmt: skip
    exposure = torch.tensor([1.3, 0.8, 1.15])
    lighting = graph.renderer.lighting
    dark = graph.target(torch.full((3, 3, SIZE, SIZE), 0.5), torch.zeros(3, 68, 2))
    seen = graph.render(replace(params, light=lighting.brighter(params.light, exposure)), dark).render
    photo = graph.target(seen.image.detach(), seen.landmarks.detach())
    matched = match_exposure(graph, graph.render(params, photo))
    recovered = light_colour(lighting, matched.light).mean(1) / light_colour(lighting, params.light).mean(1)
    assert recovered == pytest.approx(exposure.tolist(), rel=0.03)
    inside = seen.mask.expand_as(seen.image) > 0.5
    before = (graph.render(params, photo).render.image - photo.image).abs()[inside].mean()
    after = (graph.render(matched, photo).render.image - photo.image).abs()[inside].mean()
    assert after < 0.25 * before and after < 0.01


def test_regress_applies_the_exposure_match_unless_switched_off(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    module = load_fast_ganfit(tmp_path / "tiny.ckpt", values={"colour_map": None})  # a colour map replaces it
    assert module.hparams.exposure_match  # the default, also for checkpoints written before the option
    crops = torch.full((1, 3, SIZE, SIZE), 0.9)
    landmarks = torch.rand(1, 68, 2) * 30 + 17
    raw = module.reconstruct(crops, landmarks).params
    matched = regress(module, crops, landmarks)
    assert not torch.allclose(raw.light, matched.light)
    for group in ("shape", "expression", "texture", "camera"):  # the light alone changes
        assert torch.equal(getattr(raw, group), getattr(matched, group)), group
    off = load_fast_ganfit(tmp_path / "tiny.ckpt", values={"exposure_match": False, "colour_map": None})
    assert torch.allclose(regress(off, crops, landmarks).light, raw.light)


def test_colour_stage_brightness_target_is_the_synthetic_lights_brightness(ict_model: MorphableModel) -> None:
    """GANFit++'s light intensity prior pulls towards the brightness the regressor's training lights have on
    average: otherwise the fitted albedo of the synthetic faces comes out brighter or darker than the truth."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    lights = sample_random_faces(ict_model, 2000, torch.Generator().manual_seed(0)).light
    brightness = light_colour(PhongLighting(), lights).mean(1).log().mean().exp()
    conf = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("fit", overrides=["image=x.png"])
    colour = instantiate(cfg.refinement).stages[-1]
    assert colour.name == "colour" and colour.loss.light_intensity_target == pytest.approx(float(brightness), abs=0.02)


def test_exposure_match_is_a_model_option_of_train_py() -> None:
    """docs/regressor_and_losses.md: a checkpoint trained with ``model.exposure_match=false`` keeps it off."""
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        default = compose("train", overrides=["experiment=demo"])
        switched_off = compose("train", overrides=["experiment=demo", "model.exposure_match=false"])
    assert default.model.exposure_match is True and switched_off.model.exposure_match is False
