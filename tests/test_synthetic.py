"""Synthetic faces: determinism, ground truth consistent with the renderer, plausible images, the command line."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from data_commands import command_status

from fastganfit.cli import synthetic as synthetic_command
from fastganfit.data.face_shards import PARAM_NAMES, face_dataset, read_face_manifest
from fastganfit.data.synthetic import (
    SyntheticSettings,
    generate_synthetic_faces,
    random_background,
    sample_generator,
)
from fastganfit.render.camera import PITCH, ROLL, YAW, PerspectiveCamera
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import PhongLighting
from fastganfit.texture.procedural import ProceduralTexture

SIZE = 64
SEED = 5
N = 4


def read(folder: Path) -> list[dict]:
    return list(face_dataset(folder))


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory, ict_model) -> Path:
    folder = tmp_path_factory.mktemp("synthetic") / "set"
    generate_synthetic_faces(
        folder, N, SEED, crop_size=SIZE, max_per_shard=3, batch_size=2, model=ict_model, progress=False
    )
    return folder


def test_same_seed_gives_identical_shards_and_batch_size_does_not_matter(
    synthetic_set: Path, tmp_path: Path, ict_model
) -> None:
    names = ["manifest.json", "synthetic-000000.tar", "synthetic-000001.tar"]
    assert sorted(path.name for path in synthetic_set.iterdir()) == names
    generate_synthetic_faces(
        tmp_path / "again", N, SEED, crop_size=SIZE, max_per_shard=3, batch_size=2, model=ict_model, progress=False
    )
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (synthetic_set / name).read_bytes(), name

    generate_synthetic_faces(
        tmp_path / "batch3", N, SEED, crop_size=SIZE, max_per_shard=3, batch_size=3, model=ict_model, progress=False
    )
    for ours, theirs in zip(read(synthetic_set), read(tmp_path / "batch3"), strict=True):
        assert ours["key"] == theirs["key"]
        assert torch.equal(ours["landmarks"], theirs["landmarks"])
        assert torch.equal(ours["vertices"], theirs["vertices"])
        assert all(torch.equal(ours["params"][name], theirs["params"][name]) for name in PARAM_NAMES)
        assert (ours["image"] - theirs["image"]).abs().max() <= 1 / 255 + 1e-6


def test_different_seed_gives_different_faces(synthetic_set: Path, tmp_path: Path, ict_model) -> None:
    generate_synthetic_faces(tmp_path, 2, SEED + 1, crop_size=SIZE, model=ict_model, progress=False)
    assert (tmp_path / "synthetic-000000.tar").read_bytes() != (synthetic_set / "synthetic-000000.tar").read_bytes()
    ours, theirs = read(synthetic_set)[0], read(tmp_path)[0]
    assert not torch.allclose(ours["params"]["shape"], theirs["params"]["shape"])
    assert (ours["landmarks"] - theirs["landmarks"]).abs().max() > 1.0
    assert sample_generator(SEED, 0).initial_seed() != sample_generator(SEED, 1).initial_seed()
    assert sample_generator(SEED, 1).initial_seed() != sample_generator(SEED + 1, 0).initial_seed()


def test_ground_truth_matches_a_re_render(synthetic_set: Path, ict_model) -> None:
    manifest = read_face_manifest(synthetic_set)
    settings = manifest["generator"]
    texture = ProceduralTexture(ict_model, settings["texture_resolution"])
    camera = PerspectiveCamera(**settings["camera"])
    renderer = FaceRenderer.from_model(
        ict_model, camera=camera, lighting=PhongLighting(), image_size=SIZE, backend="torch"
    )
    samples = read(synthetic_set)
    assert len(samples) == N
    for sample in samples:
        params = {name: value[None] for name, value in sample["params"].items()}
        assert [params[name].shape[1] for name in PARAM_NAMES] == [100, 53, 43, 7, 10]
        vertices = ict_model(params["shape"], params["expression"])
        torch.testing.assert_close(vertices[0], sample["vertices"], atol=1e-4, rtol=0)
        with torch.no_grad():
            out = renderer(vertices, texture(params["texture"]), params["camera"], params["light"])
        # the stored landmarks are the renderer's projection of the landmark vertices
        torch.testing.assert_close(out.landmarks[0], sample["landmarks"], atol=1e-4, rtol=0)
        projected = camera.project(ict_model.landmarks(vertices), params["camera"], (SIZE, SIZE))[0, :, :2]
        torch.testing.assert_close(projected, sample["landmarks"], atol=1e-4, rtol=0)
        assert sample["metadata"]["landmark_visible"] == out.landmark_visibility[0].tolist()
        # the stored image is that render (up to JPEG) where the face is
        mask = out.mask[0, 0] > 0.5
        difference = (out.image[0] - sample["image"]).abs().mean(0)[mask]
        assert difference.median() < 0.02, float(difference.median())
        # the face is in the picture: the crop's centre is covered, the face fills a good part of it
        centre = SIZE // 2
        assert bool(mask[centre - 3 : centre + 4, centre - 3 : centre + 4].all())
        assert 0.3 < mask.float().mean() < 0.95
        # and looks like skin around the landmarks: warm pixels (R > G > B) at the visible nose landmarks
        image = sample["image"]
        visible = out.landmark_visibility[0]
        rgb = [
            image[:, round(y), round(x)]
            for index, (x, y) in enumerate(sample["landmarks"].tolist())
            if 27 <= index <= 35 and visible[index]
        ]
        assert len(rgb) >= 5
        warm = [float(r) > float(g) > float(b) for r, g, b in rgb]
        assert sum(warm) >= 0.8 * len(warm), rgb


def test_metadata_and_manifest(synthetic_set: Path) -> None:
    samples = read(synthetic_set)
    assert [sample["key"] for sample in samples] == [f"synthetic_s{SEED}_{index:08d}" for index in range(N)]
    settings = SyntheticSettings()
    for index, sample in enumerate(samples):
        metadata = sample["metadata"]
        assert metadata["source"] == f"synthetic:seed={SEED}:index={index}"
        assert metadata["landmarker"] == "synthetic" and metadata["crop_size"] == SIZE
        assert metadata["crop_transform"] == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
        points = sample["landmarks"]
        expected_box = [*points.min(0).values.tolist(), *points.max(0).values.tolist()]
        np.testing.assert_allclose(metadata["box"], expected_box, atol=1e-4)
        assert points.min() >= 0 and points.max() <= SIZE - 1  # every landmark inside the crop
        camera = sample["params"]["camera"]
        assert abs(camera[YAW]) <= math.radians(settings.max_yaw_degrees)
        assert abs(camera[PITCH]) <= math.radians(settings.max_pitch_degrees)
        assert abs(camera[ROLL]) <= math.radians(settings.max_roll_degrees)
    manifest = read_face_manifest(synthetic_set)
    assert manifest["seed"] == SEED and manifest["samples"] == N and manifest["crop_size"] == SIZE
    assert [shard["samples"] for shard in manifest["shards"]] == [3, 1]
    assert manifest["generator"]["max_yaw_degrees"] == 45.0 and manifest["generator"]["texture_dim"] == 43


def test_backgrounds_are_smooth_varied_colour_fields() -> None:
    backgrounds = torch.stack([random_background(96, sample_generator(1, index)) for index in range(8)])
    assert backgrounds.shape == (8, 3, 96, 96)
    assert backgrounds.min() >= 0 and backgrounds.max() <= 1
    spread = backgrounds.flatten(2).std(2).mean(1)  # variation across each picture
    assert (spread > 0.01).all(), spread
    blurred = torch.nn.functional.avg_pool2d(backgrounds, 8)
    assert (blurred.flatten(1).std(1) > 0.005).all()  # large-scale structure, not just noise
    neighbours = (backgrounds[..., 1:] - backgrounds[..., :-1]).abs().mean()
    assert neighbours < 0.05  # smooth: pixel-to-pixel steps are small
    means = backgrounds.mean((2, 3))
    assert torch.cdist(means, means).fill_diagonal_(1).min() > 0.01  # every background has its own colour


def synthetic(*overrides: str) -> int:
    """The exit status of ``fastganfit-synthetic`` with ``overrides``."""
    return command_status(synthetic_command, "synthetic", *overrides)


def test_command_line(tmp_path: Path, capsys) -> None:
    output = tmp_path / "cli"
    assert synthetic(f"output={output}", "n=2", "seed=3", "crop_size=48", "preview=2", "progress=false") == 0
    assert "wrote 2 synthetic faces (seed 3) to 1 shards" in capsys.readouterr().out
    assert sorted(path.name for path in output.iterdir()) == ["manifest.json", "preview.png", "synthetic-000000.tar"]
    assert json.loads((output / "manifest.json").read_text())["seed"] == 3
    again = tmp_path / "again"
    generate_synthetic_faces(again, 2, 3, crop_size=48, progress=False)
    assert (again / "synthetic-000000.tar").read_bytes() == (output / "synthetic-000000.tar").read_bytes()
    assert synthetic(f"output={output}", "n=2", "seed=3", "crop_size=48") == 1
    assert "already holds face shards" in capsys.readouterr().err
    assert synthetic("n=2", "seed=1") == 2
    assert "fastganfit-synthetic: error: give output=DIR" in capsys.readouterr().err
    assert synthetic(f"output={output}") == 2
    assert "give n=N and seed=S" in capsys.readouterr().err
    assert synthetic(f"output={output}", "n=0", "seed=1") == 2
    assert "n must be an integer of at least 1, got 0" in capsys.readouterr().err
    assert synthetic(f"output={output}", "n=1", "seed=1", "preview=few") == 2
    assert "preview must be an integer of at least 0, got 'few'" in capsys.readouterr().err


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        generate_synthetic_faces(tmp_path, 1, -1)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        generate_synthetic_faces(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="max_yaw_degrees must be a finite non-negative number"):
        SyntheticSettings(max_yaw_degrees=float("nan"))
    assert not any(tmp_path.iterdir())
