"""Mesh export: OBJ (+MTL+PNG) and PLY round trips, trimesh compatibility, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io import atomic, mesh_export
from fastganfit.io.atomic import atomic_write, write_files_atomically
from fastganfit.io.mesh_export import read_obj, read_ply, write_obj, write_ply


def grid_mesh(rows: int = 4, cols: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """A bumpy grid with per-corner UVs that have a seam (the last column's UVs are duplicated)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    vertices = np.stack([x * 10.0, y * 10.0, rng.normal(size=x.shape)], -1).reshape(-1, 3)
    vertices += rng.normal(scale=1e-3, size=vertices.shape)  # digits beyond float32 precision
    faces = []
    for r in range(rows - 1):
        for c in range(cols - 1):
            a, b, d, e = r * cols + c, r * cols + c + 1, (r + 1) * cols + c, (r + 1) * cols + c + 1
            faces += [[a, b, e], [a, e, d]]
    faces = np.asarray(faces, np.int64)
    uvs = np.concatenate([vertices[:, :2] / vertices[:, :2].max(0), rng.uniform(size=(rows, 2))]).astype(np.float32)
    face_uvs = faces.copy()
    last_column = faces % cols == cols - 1
    face_uvs[last_column] = rows * cols + faces[last_column] // cols
    return {"vertices": vertices, "faces": faces, "uvs": uvs, "face_uvs": face_uvs}


def leftover_temporaries(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_obj_round_trip_with_uvs_and_texture(tmp_path: Path) -> None:
    mesh = grid_mesh()
    texture = torch.rand(3, 16, 24, generator=torch.Generator().manual_seed(1))
    written = write_obj(tmp_path / "face.obj", texture=texture, **mesh)
    assert [p.name for p in written] == ["face.mtl", "face.obj", "face.png"]
    back = read_obj(tmp_path / "face.obj")
    np.testing.assert_array_equal(back.vertices, mesh["vertices"].astype(np.float32))
    np.testing.assert_array_equal(back.faces, mesh["faces"])
    np.testing.assert_array_equal(back.uvs, mesh["uvs"])
    np.testing.assert_array_equal(back.face_uvs, mesh["face_uvs"])
    assert back.texture == tmp_path / "face.png"
    image = np.asarray(Image.open(back.texture))
    np.testing.assert_array_equal(image, (texture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    assert not leftover_temporaries(tmp_path)


def test_obj_round_trip_accepts_torch_and_plain_geometry(tmp_path: Path) -> None:
    mesh = grid_mesh(seed=3)
    write_obj(tmp_path / "plain.obj", torch.from_numpy(mesh["vertices"]), torch.from_numpy(mesh["faces"]))
    back = read_obj(tmp_path / "plain.obj")
    np.testing.assert_array_equal(back.vertices, mesh["vertices"].astype(np.float32))
    np.testing.assert_array_equal(back.faces, mesh["faces"])
    assert back.uvs is None and back.face_uvs is None and back.texture is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.obj"]


def test_per_vertex_uvs_need_no_face_uvs(tmp_path: Path) -> None:
    mesh = grid_mesh()
    per_vertex = mesh["uvs"][: len(mesh["vertices"])]
    write_obj(tmp_path / "m.obj", mesh["vertices"], mesh["faces"], uvs=per_vertex)
    back = read_obj(tmp_path / "m.obj")
    np.testing.assert_array_equal(back.face_uvs, mesh["faces"])
    with pytest.raises(ValueError, match="face_uvs is needed"):
        write_obj(tmp_path / "bad.obj", mesh["vertices"], mesh["faces"], uvs=mesh["uvs"])


def test_read_obj_triangulates_polygons_and_resolves_relative_indices(tmp_path: Path) -> None:
    text = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1 4//1\nf -4 -2 -1\n"
    (tmp_path / "quad.obj").write_text(text)
    back = read_obj(tmp_path / "quad.obj")
    np.testing.assert_array_equal(back.faces, [[0, 1, 2], [0, 2, 3], [0, 2, 3]])
    assert back.uvs is None


def test_obj_opens_in_trimesh_with_uvs_and_image(tmp_path: Path) -> None:
    mesh = grid_mesh()
    texture = np.zeros((20, 10, 3), np.uint8)
    texture[:10] = (255, 0, 0)  # top half red
    texture[10:] = (0, 0, 255)  # bottom half blue
    write_obj(tmp_path / "t.obj", texture=texture, **mesh)
    loaded = trimesh.load(tmp_path / "t.obj", process=False)
    assert isinstance(loaded, trimesh.Trimesh)
    assert len(loaded.faces) == len(mesh["faces"])
    assert loaded.visual.material.image.size == (10, 20)
    # trimesh splits vertices at UV seams: every (position, uv) pair it holds must be one we wrote
    corners = {
        (tuple(mesh["vertices"][v].astype(np.float32)), tuple(mesh["uvs"][t]))
        for v, t in zip(mesh["faces"].ravel(), mesh["face_uvs"].ravel(), strict=True)
    }
    seen = {
        (tuple(p), tuple(uv))
        for p, uv in zip(loaded.vertices.astype(np.float32), loaded.visual.uv.astype(np.float32), strict=True)
    }
    assert seen == corners
    # OBJ convention: v = 0 is the bottom of the image
    colours = loaded.visual.to_color().vertex_colors[:, :3]
    low, high = loaded.visual.uv[:, 1] < 0.4, loaded.visual.uv[:, 1] > 0.6
    assert low.any() and high.any()
    assert (colours[low] == (0, 0, 255)).all() and (colours[high] == (255, 0, 0)).all()


def test_ply_round_trip_and_trimesh(tmp_path: Path) -> None:
    mesh = grid_mesh()
    colours = np.random.default_rng(0).uniform(size=(len(mesh["vertices"]), 3))
    write_ply(tmp_path / "m.ply", torch.from_numpy(mesh["vertices"]), mesh["faces"], vertex_colors=colours)
    assert b"format binary_little_endian 1.0" in (tmp_path / "m.ply").read_bytes()[:200]
    back = read_ply(tmp_path / "m.ply")
    np.testing.assert_array_equal(back.vertices, mesh["vertices"].astype(np.float32))
    np.testing.assert_array_equal(back.faces, mesh["faces"])
    np.testing.assert_array_equal(back.vertex_colors, (colours * 255).round().astype(np.uint8))
    loaded = trimesh.load(tmp_path / "m.ply", process=False)
    np.testing.assert_array_equal(loaded.vertices, mesh["vertices"].astype(np.float32))
    np.testing.assert_array_equal(loaded.faces, mesh["faces"])
    np.testing.assert_array_equal(loaded.visual.vertex_colors[:, :3], back.vertex_colors)


def test_read_ply_reads_trimesh_export(tmp_path: Path) -> None:
    mesh = grid_mesh()
    exported = trimesh.Trimesh(mesh["vertices"], mesh["faces"], process=False)
    (tmp_path / "t.ply").write_bytes(exported.export(file_type="ply", encoding="binary"))
    back = read_ply(tmp_path / "t.ply")
    np.testing.assert_allclose(back.vertices, mesh["vertices"], rtol=1e-6)
    np.testing.assert_array_equal(back.faces, mesh["faces"])


def test_ict_model_exports_with_texture(tmp_path: Path) -> None:
    model = MorphableModel.ict()
    generator = torch.Generator().manual_seed(0)
    vertices = model(torch.randn(1, model.num_shape, generator=generator), torch.zeros(1, model.num_expression))[0]
    texture = torch.rand(3, 64, 64, generator=generator)
    write_obj(tmp_path / "ict.obj", vertices, model.faces, model.uvs, model.face_uvs, texture)
    back = read_obj(tmp_path / "ict.obj")
    np.testing.assert_array_equal(back.vertices, vertices.numpy())
    np.testing.assert_array_equal(back.faces, model.faces.numpy())
    np.testing.assert_array_equal(back.uvs, model.uvs.numpy())
    np.testing.assert_array_equal(back.face_uvs, model.face_uvs.numpy())
    assert Image.open(back.texture).size == (64, 64)


def test_bad_inputs_are_rejected_without_writing(tmp_path: Path) -> None:
    mesh = grid_mesh()
    with pytest.raises(ValueError, match=r"faces: indices must lie in \[0, 20\)"):
        write_obj(tmp_path / "a.obj", mesh["vertices"], mesh["faces"] + 1)
    with pytest.raises(ValueError, match="need uvs"):
        write_obj(tmp_path / "a.obj", mesh["vertices"], mesh["faces"], texture=np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match=r"vertices: expected \[V, 3\]"):
        write_ply(tmp_path / "a.ply", mesh["vertices"][:, :2], mesh["faces"])
    with pytest.raises(ValueError, match=r"should end in \.obj"):
        write_obj(tmp_path / "a.ply", mesh["vertices"], mesh["faces"])
    with pytest.raises(ValueError, match=r"float texture must be \[3, H, W\]"):
        write_obj(tmp_path / "a.obj", texture=torch.rand(8, 8, 3), **mesh)
    with pytest.raises(ValueError, match="NaN"):
        write_obj(tmp_path / "a.obj", np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
    assert list(tmp_path.iterdir()) == []


def test_failing_texture_leaves_previous_export_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mesh = grid_mesh()
    write_obj(tmp_path / "face.obj", texture=np.zeros((4, 4, 3), np.uint8), **mesh)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_png(image: np.ndarray) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(mesh_export, "png_bytes", broken_png)
    moved = dict(mesh, vertices=mesh["vertices"] + 1.0)
    with pytest.raises(OSError, match="disk full"):
        write_obj(tmp_path / "face.obj", texture=np.ones((4, 4, 3), np.uint8), **moved)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_failure_while_writing_second_file_replaces_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.txt").write_text("old a")
    real_fsync, calls = os.fsync, []

    def failing_fsync(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError("I/O error")
        real_fsync(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_files_atomically({tmp_path / "a.txt": "new a", tmp_path / "b.txt": b"new b"})
    assert (tmp_path / "a.txt").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    write_files_atomically({tmp_path / "a.txt": "new a", tmp_path / "sub" / "b.txt": b"new b"})
    assert (tmp_path / "a.txt").read_text() == "new a" and (tmp_path / "sub" / "b.txt").read_bytes() == b"new b"


def test_atomic_write_keeps_old_content_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as handle:
        handle.write(b"partial new content")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert not leftover_temporaries(tmp_path)
    with atomic_write(target, "w") as handle:
        handle.write("néw\n")
    assert target.read_bytes() == "néw\n".encode()
    with pytest.raises(ValueError, match="mode must be one of"):
        atomic_write(target, "ab").__enter__()


def test_atomic_write_creates_files_with_normal_permissions(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "atomic.txt", "w") as handle:
        handle.write("x")
    (tmp_path / "plain.txt").write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode == (tmp_path / "plain.txt").stat().st_mode
