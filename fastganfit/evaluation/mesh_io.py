"""Reading triangle meshes for evaluation: OBJ (own reader, order preserving), PLY (trimesh), NPZ."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fastganfit.evaluation.alignment import check_points
from fastganfit.evaluation.closest_point import check_faces

MESH_SUFFIXES = (".obj", ".ply", ".npz")


def _read_obj(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[V, 3]`` and fan-triangulated faces ``[F, 3]`` of an OBJ file, in file order."""
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "v":
                if len(fields) < 4:
                    raise ValueError(f"{path}:{number}: vertex line needs 3 coordinates: {line.strip()!r}")
                vertices.append([float(x) for x in fields[1:4]])
            elif fields[0] == "f":
                if len(fields) < 4:
                    raise ValueError(f"{path}:{number}: face line needs at least 3 vertices: {line.strip()!r}")
                ids = [int(token.split("/")[0]) for token in fields[1:]]
                ids = [i - 1 if i > 0 else len(vertices) + i for i in ids]
                faces.extend([ids[0], ids[j], ids[j + 1]] for j in range(1, len(ids) - 1))
    return np.asarray(vertices, dtype=np.float64).reshape(-1, 3), np.asarray(faces, dtype=np.int64).reshape(-1, 3)


def _read_ply(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a PLY file (ASCII or binary), vertex order preserved."""
    import trimesh

    mesh = trimesh.load(path, process=False, force="mesh")
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``vertices [V, 3]`` and ``faces [F, 3]`` of an NPZ file."""
    with np.load(path) as data:
        missing = {"vertices", "faces"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: NPZ mesh needs arrays 'vertices' and 'faces', missing {sorted(missing)}")
        return np.asarray(data["vertices"], dtype=np.float64), np.asarray(data["faces"])


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle mesh.

    Args:
        path: an ``.obj`` (polygons are fan-triangulated), ``.ply`` or ``.npz`` (``vertices``, ``faces``).

    Returns:
        ``vertices [V, 3]`` float64 (file units, mm expected) and ``faces [F, 3]`` int64.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    readers = {".obj": _read_obj, ".ply": _read_ply, ".npz": _read_npz}
    suffix = path.suffix.lower()
    if suffix not in readers:
        raise ValueError(f"{path}: unsupported mesh format {suffix!r}; expected one of {MESH_SUFFIXES}")
    vertices, faces = readers[suffix](path)
    vertices = check_points(vertices, f"vertices of {path}")
    return vertices, check_faces(faces, vertices.shape[0], f"faces of {path}")


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write ``vertices [V, 3]`` and ``faces [F, 3]`` (0-based) as a minimal OBJ file."""
    vertices = check_points(vertices, "vertices")
    faces = check_faces(faces, vertices.shape[0])
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    Path(path).write_text("\n".join(lines) + "\n")


def submesh(vertices: np.ndarray, faces: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The part of a mesh on the vertices selected by the boolean mask ``keep [V]``.

    Keeps the faces whose three vertices are selected and re-indexes them; returns
    ``vertices [V', 3]`` and ``faces [F', 3]``.
    """
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (vertices.shape[0],):
        raise ValueError(f"keep must be a boolean mask of shape [{vertices.shape[0]}], got {list(keep.shape)}")
    new_index = np.cumsum(keep) - 1
    kept_faces = faces[keep[faces].all(1)]
    return vertices[keep], new_index[kept_faces].astype(np.int64)
