"""Random face sampling and the `make faces` entry point (scripts/render_random_faces.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastganfit.data.random_faces import sample_random_faces, sample_sh_light
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io.mesh_export import read_obj
from fastganfit.render.camera import PITCH, YAW
from fastganfit.render.lighting import SphericalHarmonicsLighting

REPO = Path(__file__).resolve().parent.parent


def test_sampling_is_deterministic_and_within_ranges(ict_model: MorphableModel) -> None:
    first = sample_random_faces(ict_model, 64, torch.Generator().manual_seed(5), max_yaw_degrees=30.0)
    second = sample_random_faces(ict_model, 64, torch.Generator().manual_seed(5), max_yaw_degrees=30.0)
    for name in ("shape", "expression", "camera", "light"):
        torch.testing.assert_close(getattr(first, name), getattr(second, name), rtol=0, atol=0)
    assert first.camera[:, YAW].abs().max() <= math.radians(30.0)
    assert first.camera[:, PITCH].abs().max() <= math.radians(20.0)
    assert first.camera[:, YAW].abs().max() > math.radians(20.0), "the yaw range is used"
    assert (first.expression >= 0).all() and (first.expression <= 0.5).all()
    assert 0.5 < first.shape.std() < 1.5
    with pytest.raises(ValueError, match="batch_size"):
        sample_random_faces(ict_model, 0, torch.Generator())


@pytest.mark.slow
def test_demo_entry_point_writes_a_grid_of_faces_and_meshes(tmp_path: Path) -> None:
    command = [
        sys.executable, str(REPO / "scripts" / "render_random_faces.py"), "num_faces=4", "batch_size=2",
        "columns=2", "renderer.image_size=64", "export_meshes=1", f"hydra.run.dir={tmp_path}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")).astype(float) / 255
    assert grid.shape == (2 * 64 + 6, 2 * 64 + 6, 3)
    tile = grid[2:66, 2:66]
    centre = tile[16:48, 16:48]
    assert (centre.sum(-1) > 0.3).mean() > 0.9, "the face covers the middle of each tile"
    assert centre[..., 0].mean() > centre[..., 2].mean(), "faces are skin coloured (red above blue)"
    mesh = read_obj(tmp_path / "face_00.obj")
    assert mesh.vertices.shape == (9409, 3) and mesh.texture is not None and mesh.texture.exists()


def test_demo_entry_point_rejects_bad_options(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "scripts" / "render_random_faces.py"), "num_faces=0",
               f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode != 0
    assert "num_faces and batch_size must be positive" in result.stderr
    assert not (tmp_path / "grid.png").exists()


def test_sh_light_samples_shade_faces_plausibly() -> None:
    light = sample_sh_light(64, torch.Generator().manual_seed(0))
    assert light.shape == (64, 27)
    normals = torch.nn.functional.normalize(torch.randn(64, 3, 8, 8), dim=1)
    normals[:, 2] = normals[:, 2].abs()
    shaded = SphericalHarmonicsLighting().shade(torch.ones(64, 3, 8, 8), normals, normals, light)
    assert 0.5 < shaded.mean() < 1.3, "about as bright as white ambient light on average"
    assert shaded.std(dim=(2, 3)).mean() > 0.05, "the light has a direction"
    torch.testing.assert_close(shaded[:, 0], shaded[:, 2])
