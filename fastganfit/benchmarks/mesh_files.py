"""Reading the benchmarks' meshes with the project's readers (:mod:`fastganfit.io.mesh_export`), plus NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastganfit.geometry.alignment import check_points
from fastganfit.geometry.closest_point import check_faces
from fastganfit.io.mesh_export import read_obj, read_ply

MESH_SUFFIXES = (".obj", ".ply", ".npz")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``vertices [V, 3]`` and ``faces [F, 3]`` of an NPZ file."""
    with np.load(path) as data:
        missing = {"vertices", "faces"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: NPZ mesh needs arrays 'vertices' and 'faces', missing {sorted(missing)}")
        return np.asarray(data["vertices"], dtype=np.float64), np.asarray(data["faces"])


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh: ``.obj`` (polygons fan-triangulated), binary ``.ply`` or ``.npz``.

    Returns ``vertices [V, 3]`` float64 (file units) and ``faces [F, 3]`` int64, vertex order kept.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        vertices, faces = _read_npz(path)
    elif suffix in (".obj", ".ply"):
        mesh = read_obj(path, dtype=np.float64) if suffix == ".obj" else read_ply(path)
        vertices, faces = mesh.vertices.astype(np.float64), mesh.faces
    else:
        raise ValueError(f"{path}: unsupported mesh format {suffix!r}; expected one of {MESH_SUFFIXES}")
    vertices = check_points(vertices, f"vertices of {path}")
    return vertices, check_faces(faces, vertices.shape[0], f"faces of {path}")
