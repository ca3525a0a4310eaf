"""The portrait colour map (model.colour_map): the ridge fit, its file format and errors, which graphs it fits, what
``predict`` does with it, and the shipped map's behaviour on skin colours."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_checkpoint import write_tiny_checkpoint

from fastganfit.benchmarks.colour import light_chroma, lightness
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.optimise import regress
from fastganfit.perception.heatmaps import GaussianHeatmaps
from fastganfit.perception.identity import dlib_identity
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.colour_map import (
    AUTO,
    ColourMap,
    fit_colour_map,
    load_colour_map,
    portrait_colour_map_path,
    resolve_colour_map,
    texture_fingerprint,
)
from fastganfit.regression.regressor import face_colour_features
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import SphericalHarmonicsLighting
from fastganfit.texture.pca import load_portrait_texture_prior
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 64


def skin_features(rgb: tuple[float, float, float], spread: float = 0.04, batch: int = 1) -> torch.Tensor:
    """Face colour features ``[B, 6]`` of a skin of mean colour ``rgb``."""
    return torch.tensor([[*rgb, spread, spread, spread]]).expand(batch, 6)


def graph_with(ict_model: MorphableModel, texture: torch.nn.Module,
               lighting: torch.nn.Module | None = None) -> FaceReconstructionGraph:  # fmt: skip
    renderer = FaceRenderer.from_model(ict_model, image_size=SIZE, backend="torch", lighting=lighting)
    return FaceReconstructionGraph(ict_model, texture, renderer, dlib_identity(layers=[]), GaussianHeatmaps(SIZE, 32))


def test_fit_recovers_a_linear_map_and_ridge_shrinks_it() -> None:
    generator = torch.Generator().manual_seed(0)
    colour = 0.5 + 0.1 * torch.randn(200, 6, generator=generator)
    weight, bias = torch.randn(6, 7, generator=generator), torch.randn(7, generator=generator)
    targets = colour @ weight + bias
    fingerprint = torch.zeros(5, 3)
    exact = fit_colour_map(colour, targets[:, :4], targets[:, 4:], "PhongLighting", fingerprint, ridge=0.0)
    texture, light = exact(colour)
    assert torch.allclose(texture, targets[:, :4], atol=1e-4) and torch.allclose(light, targets[:, 4:], atol=1e-4)
    assert torch.allclose(exact.weight, weight, atol=1e-3) and torch.allclose(exact.bias, bias, atol=1e-3)
    shrunk = fit_colour_map(colour, targets[:, :4], targets[:, 4:], "PhongLighting", fingerprint, ridge=4.0)
    assert shrunk.weight.norm() < 0.6 * exact.weight.norm()  # scaled features of variance about 4: shrunk by ~1/2
    mean_texture, _ = shrunk(colour.mean(0, keepdim=True))  # the mean colour still maps to the mean target
    assert torch.allclose(mean_texture[0], targets[:, :4].mean(0), atol=1e-4)
    heavy = torch.zeros(200)
    heavy[:100] = 1.0  # weight 0 for the second half: the same map as fitted on the first half alone
    weighted = fit_colour_map(colour, targets[:, :4], targets[:, 4:] + torch.arange(200.0)[:, None] * (
        torch.arange(200) >= 100)[:, None], "PhongLighting", fingerprint, ridge=0.0, sample_weight=heavy)  # fmt: skip
    assert torch.allclose(weighted.weight, weight, atol=1e-3) and torch.allclose(weighted.bias, bias, atol=1e-3)
    with pytest.raises(ValueError, match="sample_weight must be"):
        fit_colour_map(colour, targets[:, :4], targets[:, 4:], "PhongLighting", fingerprint, sample_weight=-heavy)
    with pytest.raises(ValueError, match="needs more than 6 samples"):
        fit_colour_map(colour[:5], targets[:5, :4], targets[:5, 4:], "PhongLighting", fingerprint)
    with pytest.raises(ValueError, match="expected colour"):
        fit_colour_map(colour[:, :3], targets[:, :4], targets[:, 4:], "PhongLighting", fingerprint)


def test_map_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    colour_map = ColourMap(torch.randn(6, 5), torch.randn(5), 3, 2, "PhongLighting", torch.randn(4, 3))
    colour_map.save(tmp_path / "map.npz")
    loaded = load_colour_map(tmp_path / "map.npz")
    features = torch.rand(3, 6)
    assert all(torch.allclose(a, b) for a, b in zip(loaded(features), colour_map(features), strict=True))
    assert loaded.lighting == "PhongLighting" and (loaded.texture_size, loaded.light_size) == (3, 2)
    with pytest.raises(FileNotFoundError, match=r"missing.npz: no such file .*model.colour_map=null"):
        load_colour_map(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", weight=np.zeros((6, 5)))
    with pytest.raises(ValueError, match=r"partial.npz: missing \['bias'"):
        load_colour_map(tmp_path / "partial.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text\.npz: not an npz file"):
        load_colour_map(tmp_path / "text.npz")
    np.savez(tmp_path / "shapes.npz", weight=np.zeros((6, 4)), bias=np.zeros(5), texture_size=3, light_size=2,
             lighting="PhongLighting", texture_fingerprint=np.zeros((4, 3)))  # fmt: skip
    with pytest.raises(ValueError, match=r"shapes.npz: ColourMap: expected weight \[6, 5\]"):
        load_colour_map(tmp_path / "shapes.npz")
    with pytest.raises(ValueError, match=r"expected face colour features \[B, 6\]"):
        colour_map(torch.rand(2, 3))
    assert not list(tmp_path.glob("*.tmp*"))  # the atomic write leaves nothing behind


def test_a_map_fits_only_the_texture_model_and_lighting_it_was_fitted_for(ict_model: MorphableModel,
                                                                           tmp_path: Path) -> None:  # fmt: skip
    pca = load_portrait_texture_prior(32)
    graph = graph_with(ict_model, pca)
    sizes = graph.sizes
    fingerprint = texture_fingerprint(graph.texture, sizes.texture)
    fitting = ColourMap(torch.zeros(6, sizes.texture + 10), torch.zeros(sizes.texture + 10), sizes.texture, 10,
                        "PhongLighting", fingerprint)  # fmt: skip
    assert fitting.mismatch(graph) is None
    assert fitting.mismatch(graph_with(ict_model, pca.resized(64))) is None  # the same model at another resolution
    other_pca = replace(fitting, texture_fingerprint=fingerprint + 0.05)
    assert "another texture model" in other_pca.mismatch(graph)
    assert "texture latent of" in fitting.mismatch(graph_with(ict_model, ProceduralTexture(ict_model, 32)))
    spherical = graph_with(ict_model, pca, lighting=SphericalHarmonicsLighting())
    assert "SphericalHarmonicsLighting" in fitting.mismatch(spherical)
    other_pca.save(tmp_path / "other.npz")
    with pytest.raises(ValueError, match=r"model.colour_map=.*other.npz: does not fit this model: it is for another"):
        resolve_colour_map(tmp_path / "other.npz", graph)
    fitting.save(tmp_path / "fits.npz")
    assert resolve_colour_map(tmp_path / "fits.npz", graph) is not None
    assert resolve_colour_map(None, graph) is None
    assert resolve_colour_map(AUTO, graph_with(ict_model, ProceduralTexture(ict_model, 32))) is None


def test_predict_takes_texture_and_light_from_the_map(tmp_path: Path) -> None:
    write_tiny_checkpoint(tmp_path / "tiny.ckpt")
    module = load_fast_ganfit(tmp_path / "tiny.ckpt", values={"colour_map": None})
    sizes = module.graph.sizes
    generator = torch.Generator().manual_seed(1)
    colour_map = ColourMap(torch.randn(6, sizes.texture + 10, generator=generator),
                           torch.randn(sizes.texture + 10, generator=generator), sizes.texture, 10, "PhongLighting",
                           texture_fingerprint(module.graph.texture, sizes.texture))  # fmt: skip
    colour_map.save(tmp_path / "map.npz")
    mapped = load_fast_ganfit(tmp_path / "tiny.ckpt", values={"colour_map": str(tmp_path / "map.npz")})
    crops = torch.rand(3, 3, SIZE, SIZE)
    crops[2] = crops[2].mean(0)  # a greyscale photo: the map, fitted on colour photos, leaves it to the heads
    landmarks = torch.rand(3, 68, 2) * 30 + 17
    raw = mapped.reconstruct(crops, landmarks)
    params = regress(mapped, crops, landmarks)
    texture, light = colour_map(face_colour_features(raw.target.image, raw.target.landmarks))
    assert torch.allclose(params.texture[:2], texture[:2], atol=1e-5)
    assert torch.allclose(params.light[:2], light[:2], atol=1e-5)
    for group in ("shape", "expression", "camera"):  # the heads' own
        assert torch.equal(getattr(params, group), getattr(raw.params, group)), group
    heads = regress(module, crops, landmarks)  # the heads with the exposure match
    assert not torch.allclose(heads.texture[:2], texture[:2])
    assert torch.equal(params.texture[2], heads.texture[2]) and torch.equal(params.light[2], heads.light[2])


def test_shipped_map_has_its_provenance() -> None:
    """The map is derived from the public-domain portraits only (pairs/A and single/; never pairs/B: it scores it)."""
    import json

    path = portrait_colour_map_path()
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["photos"]["folders"] == ["pairs/A", "single"] and record["photos"]["used"] >= 500
    assert all(item["photo"].startswith(("pairs/A/", "single/")) for item in record["photos"]["skipped"])
    assert record["texture_size"] == load_portrait_texture_prior(32).latent_dim
    assert record["lighting"] == "PhongLighting"
    licence = path.with_suffix(".md").read_text()
    assert "public domain" in licence and "scripts/build_portrait_colour_map.py" in licence


def test_shipped_map_gives_skin_that_follows_the_photo(ict_model: MorphableModel) -> None:
    """On the default texture model and lighting (tiny size), skin colours of real photos map to skin-coloured
    albedos whose lightness follows the photo's, under a light that is nearly white."""
    graph = graph_with(ict_model, load_portrait_texture_prior(32))
    colour_map = resolve_colour_map(AUTO, graph)
    assert colour_map is not None and colour_map.texture_size == graph.sizes.texture and colour_map.light_size == 10
    photos = torch.tensor([[0.85, 0.68, 0.58], [0.75, 0.55, 0.45], [0.6, 0.42, 0.32], [0.4, 0.27, 0.2]])
    texture, light = colour_map(torch.cat([skin_features(tuple(rgb)) for rgb in photos.tolist()]))
    albedo = graph.texture(texture)
    skin = graph.texture(torch.zeros(1, graph.sizes.texture)).mean(1, keepdim=True) > 0  # every texel
    mean_colour = albedo.mean((2, 3))
    assert (mean_colour[:, 0] > mean_colour[:, 1]).all() and (mean_colour[:, 1] > mean_colour[:, 2]).all()  # skin
    assert ((mean_colour > 0.05) & (mean_colour < 0.95)).all()
    albedo_lightness = lightness(albedo.clamp(0, 1), skin.expand(4, 1, -1, -1).float())
    assert np.all(np.diff(albedo_lightness) < -3)  # darker photo, darker albedo, by several L*
    tint = light_chroma(graph.renderer.lighting, light)  # %: a lit face, not a tinted one
    assert np.all(tint[:3] < 8) and tint[3] < 20  # the darkest skin, at the edge of the portraits' range: 16 %


def test_colour_map_is_a_model_option_of_train_py() -> None:
    """docs/regressor_and_losses.md: ``model.colour_map=null`` keeps the heads' texture and light."""
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parent.parent / "fastganfit" / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        default = compose("train", overrides=["experiment=demo"])
        switched_off = compose("train", overrides=["experiment=demo", "model.colour_map=null"])
    assert default.model.colour_map == AUTO and switched_off.model.colour_map is None


def test_synthetic_samples_are_the_white_lit_faces_with_their_truth(ict_model: MorphableModel, tmp_path: Path) -> None:
    """scripts/build_portrait_colour_map.py's synthetic faces: only the white-lit ones, their true texture and light,
    their colour features as the graph reads them; shards of another texture model are refused."""
    from fastganfit.assetbuild.portrait_colour import MAX_SYNTHETIC_TINT, synthetic_samples
    from fastganfit.data.face_shards import face_dataset
    from fastganfit.data.synthetic import generate_synthetic_faces

    settings = {"texture": "pca_portraits", "light_tint": 0.3, "coloured_light_fraction": 0.5}
    generate_synthetic_faces(tmp_path / "faces", n=8, seed=0, crop_size=SIZE, settings=settings, model=ict_model,
                             progress=False)  # fmt: skip
    graph = graph_with(ict_model, load_portrait_texture_prior(32))
    faces = list(face_dataset(tmp_path / "faces", split_by_node=False, split_by_worker=False))
    tints = light_chroma(graph.renderer.lighting, torch.stack([face["params"]["light"] for face in faces]))
    white = [face for face, tint in zip(faces, tints, strict=True) if tint <= MAX_SYNTHETIC_TINT]
    assert 0 < len(white) < len(faces)
    samples = synthetic_samples(graph, str(tmp_path / "faces"), len(white), batch_size=3)
    assert torch.equal(samples.texture, torch.stack([face["params"]["texture"] for face in white]))
    assert torch.equal(samples.light, torch.stack([face["params"]["light"] for face in white]))
    target = graph.target(torch.stack([face["image"] for face in white]), torch.stack([face["landmarks"] for face in
                                                                                       white]))  # fmt: skip
    assert torch.allclose(samples.colour, face_colour_features(target.image, target.landmarks), atol=1e-6)
    with pytest.raises(ValueError, match=rf"{len(white)} faces under white light, {len(white) + 1} asked for"):
        synthetic_samples(graph, str(tmp_path / "faces"), len(white) + 1)
    with pytest.raises(ValueError, match=r"texture \[57\] and light \[10\], the model's are \["):
        synthetic_samples(graph_with(ict_model, ProceduralTexture(ict_model, 32)), str(tmp_path / "faces"), 1)
