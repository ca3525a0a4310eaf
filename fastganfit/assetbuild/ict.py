"""Build the embedded ICT-FaceKit morphable model asset (``ict_face.npz``) from ICT's raw OBJ files.

ICT-FaceKit (MIT licence) stores every identity mode and expression blendshape as a full OBJ mesh
in centimetres. The builder keeps the face region (vertices 0..9408), splits quads into triangles,
keeps per-corner UV indices (so UV seams survive), converts to millimetres and stores modes as
offsets from the neutral mesh.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastganfit.facemodel.geometry import PIVOT_DEPTH_BEHIND_LANDMARKS_MM, symmetry_map

FACE_VERTEX_COUNT = 9409
NUM_IDENTITY_MODES = 100
CM_TO_MM = 10.0
MODEL_DIR = "FaceXModel"


@dataclass(frozen=True)
class ObjMesh:
    """Geometry of one OBJ file: positions ``[V, 3]``, UVs ``[T, 2]``, polygon corners as (vertex, uv)."""

    vertices: np.ndarray
    uvs: np.ndarray
    polygons: list[list[tuple[int, int]]]


def parse_obj(text: str, name: str) -> ObjMesh:
    """Parse vertices, UVs and polygons (0-based vertex/UV indices) from OBJ text."""
    vertices, uvs, polygons = [], [], []
    for line in text.splitlines():
        if line.startswith("v "):
            vertices.append(line.split()[1:4])
        elif line.startswith("vt "):
            uvs.append(line.split()[1:3])
        elif line.startswith("f "):
            corners = []
            for token in line.split()[1:]:
                parts = token.split("/")
                if len(parts) < 2 or not parts[1]:
                    raise ValueError(f"{name}: face corner {token!r} has no UV index")
                corners.append((int(parts[0]) - 1, int(parts[1]) - 1))
            polygons.append(corners)
    if not vertices:
        raise ValueError(f"{name}: no vertices found; is this an OBJ file?")
    return ObjMesh(np.asarray(vertices, np.float64), np.asarray(uvs, np.float64), polygons)


def open_ict_source(source: Path) -> Callable[[str], str]:
    """Return a reader ``path relative to the kit root -> text`` over an ICT-FaceKit checkout or archive.

    ``source`` is the checkout folder (holding ``README.md`` and ``FaceXModel/``) or its ``.tar.xz``.
    """
    if source.is_dir():
        if not (source / MODEL_DIR / "generic_neutral_mesh.obj").exists():
            raise FileNotFoundError(f"{source}: no {MODEL_DIR}/generic_neutral_mesh.obj; not an ICT-FaceKit checkout")
        return lambda rel: (source / rel).read_text(encoding="utf-8")
    if not source.is_file():
        raise FileNotFoundError(f"ICT-FaceKit source {source} does not exist (expected a folder or .tar.xz)")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(source) as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                if member.isfile() and (name.startswith(f"{MODEL_DIR}/") or name == "README.md"):
                    members[name] = archive.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ValueError(f"{source}: cannot read the archive ({error})") from error
    if f"{MODEL_DIR}/generic_neutral_mesh.obj" not in members:
        raise ValueError(f"{source}: archive has no {MODEL_DIR}/generic_neutral_mesh.obj")

    def read(rel: str) -> str:
        if rel not in members:
            raise FileNotFoundError(f"{source}: archive has no {rel}")
        return members[rel].decode("utf-8")

    return read


def read_landmark_indices(readme_text: str) -> np.ndarray:
    """The 68 Multi-PIE landmark vertex indices listed in ICT-FaceKit's README, ``[68]``."""
    match = re.search(r"Multi-PIE 68 point facial landmarks indices:\s*\n\s*\n\s*([\d,\s]+)", readme_text)
    if match is None:
        raise ValueError("ICT README: could not find the 'Multi-PIE 68 point facial landmarks indices' list")
    indices = np.array([int(tok) for tok in match.group(1).replace(",", " ").split()], np.int64)
    if indices.shape != (68,):
        raise ValueError(f"ICT README: expected 68 landmark indices, found {indices.shape[0]}")
    return indices


def triangulate_face_region(polygons: list[list[tuple[int, int]]]) -> tuple[np.ndarray, np.ndarray]:
    """Split the face-region polygons into triangles.

    Returns vertex indices ``[F, 3]`` and per-corner UV indices ``[F, 3]`` (into the original UV list).
    """
    tris, tri_uvs = [], []
    for corners in polygons:
        if max(v for v, _ in corners) >= FACE_VERTEX_COUNT:
            continue
        for k in range(1, len(corners) - 1):
            fan = (corners[0], corners[k], corners[k + 1])
            tris.append([v for v, _ in fan])
            tri_uvs.append([t for _, t in fan])
    return np.asarray(tris, np.int64), np.asarray(tri_uvs, np.int64)


def build_ict_arrays(source: Path, progress: Callable[[str], None] = lambda _: None) -> dict[str, np.ndarray]:
    """Read ICT-FaceKit from ``source`` and return the arrays stored in ``ict_face.npz``.

    Keys: ``mean [V,3]`` (mm), ``shape_basis [100,V,3]`` and ``expression_basis [53,V,3]`` (mm
    offsets; shape modes are pre-scaled so coefficients are N(0, 1)), ``faces [F,3]``, ``uvs [T,2]``,
    ``face_uvs [F,3]``, ``landmark_indices [68]``, ``symmetry [V]``, ``expression_names [53]``.
    Arrays are full precision; :func:`to_storage` makes the compact committed form.
    """
    read = open_ict_source(source)
    neutral = parse_obj(read(f"{MODEL_DIR}/generic_neutral_mesh.obj"), "generic_neutral_mesh.obj")
    landmark_indices = read_landmark_indices(read("README.md"))
    expression_names = json.loads(read(f"{MODEL_DIR}/vertex_indices.json"))["expressions"]

    faces, face_uv_raw = triangulate_face_region(neutral.polygons)
    used_uvs, face_uvs = np.unique(face_uv_raw, return_inverse=True)
    base = neutral.vertices[:FACE_VERTEX_COUNT] * CM_TO_MM

    def offsets(name: str) -> np.ndarray:
        progress(name)
        mesh = parse_obj(read(f"{MODEL_DIR}/{name}.obj"), f"{name}.obj")
        if mesh.vertices.shape != neutral.vertices.shape:
            raise ValueError(f"{name}.obj: {mesh.vertices.shape[0]} vertices, expected {neutral.vertices.shape[0]}")
        return mesh.vertices[:FACE_VERTEX_COUNT] * CM_TO_MM - base

    shape_basis = np.stack([offsets(f"identity{i:03d}") for i in range(NUM_IDENTITY_MODES)])
    expression_basis = np.stack([offsets(name) for name in expression_names])

    landmarks = base[landmark_indices]
    centre = np.array([
        (landmarks[:, 0].min() + landmarks[:, 0].max()) / 2,
        (landmarks[:, 1].min() + landmarks[:, 1].max()) / 2,
        landmarks[:, 2].mean() - PIVOT_DEPTH_BEHIND_LANDMARKS_MM,
    ])
    mean = base - centre
    symmetry, _ = symmetry_map(mean)
    return {
        "mean": mean,
        "shape_basis": shape_basis,
        "expression_basis": expression_basis,
        "faces": faces,
        "uvs": neutral.uvs[used_uvs].astype(np.float32),
        "face_uvs": face_uvs.reshape(faces.shape).astype(np.int64),
        "landmark_indices": landmark_indices,
        "symmetry": symmetry,
        "expression_names": np.asarray(expression_names),
        "units": np.asarray("mm"),
        "source": np.asarray("ICT-FaceKit Light (MIT licence), face region vertices 0..9408"),
    }


STORAGE_DTYPES = {"mean": np.float32, "shape_basis": np.float16, "expression_basis": np.float16}


def to_storage(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Cast the full-precision arrays to their stored dtypes (float16 bases keep the file small)."""
    return {key: value.astype(STORAGE_DTYPES[key]) if key in STORAGE_DTYPES else value for key, value in arrays.items()}


def quantisation_error_mm(arrays: dict[str, np.ndarray]) -> float:
    """Largest absolute error (mm) that :func:`to_storage` introduces into the mean and the bases."""
    stored = to_storage(arrays)
    return max(float(np.abs(stored[key].astype(np.float64) - arrays[key]).max()) for key in STORAGE_DTYPES)
