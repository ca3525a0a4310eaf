"""Mesh export and import: Wavefront OBJ (+ MTL + PNG texture) and binary PLY.

Writers accept torch tensors or numpy arrays and write atomically (all files of one mesh appear
together or not at all). Positions are written as float32; OBJ text uses 9 significant digits, which
round-trips float32 exactly. UVs follow the OBJ convention: ``v = 0`` is the bottom row of the image.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fastganfit.io.atomic import write_files_atomically
from fastganfit.io.images import image_to_uint8, png_bytes

ArrayLike = torch.Tensor | np.ndarray
MATERIAL_NAME = "face"


@dataclass
class MeshData:
    """A triangle mesh read back from disk.

    ``vertices [V, 3]`` float32, ``faces [F, 3]`` int64 (0-based), optional ``uvs [T, 2]`` float32 with
    per-corner ``face_uvs [F, 3]``, optional ``vertex_colors [V, 3]`` uint8 and the path of the
    ``texture`` image named by the OBJ's material, if any.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    face_uvs: np.ndarray | None = None
    vertex_colors: np.ndarray | None = None
    texture: Path | None = None


def _numpy(value: ArrayLike, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name}: expected a torch tensor or numpy array, got {type(value).__name__}")


def _positions(vertices: ArrayLike, name: str = "vertices", dtype: type = np.float32) -> np.ndarray:
    array = _numpy(vertices, name)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name}: expected [V, 3], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array.astype(dtype)


def _indices(indices: ArrayLike, name: str, bound: int, bound_name: str) -> np.ndarray:
    array = _numpy(indices, name)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{name}: expected [F, 3], got {list(array.shape)}")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name}: expected integer indices, got {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= bound):
        raise ValueError(f"{name}: indices must lie in [0, {bound}) ({bound_name}), got [{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def _rows(array: np.ndarray, fmt: str) -> str:
    buffer = io.StringIO()
    np.savetxt(buffer, array, fmt=fmt)
    return buffer.getvalue()


def write_obj(
    path: str | os.PathLike,
    vertices: ArrayLike,
    faces: ArrayLike,
    uvs: ArrayLike | None = None,
    face_uvs: ArrayLike | None = None,
    texture: ArrayLike | None = None,
    texture_name: str | None = None,
    dtype: type = np.float32,
) -> list[Path]:
    """Write ``vertices [V, 3]`` and ``faces [F, 3]`` to ``path`` (``.obj``); returns the files written.

    ``uvs [T, 2]`` with per-corner ``face_uvs [F, 3]`` add texture coordinates (``face_uvs`` may be
    omitted when ``T == V``). ``texture`` (float ``[3, H, W]`` in [0, 1] or uint8 ``[H, W, 3]``) also
    writes ``name.mtl`` and ``name.png`` (or ``texture_name``, a ``.png`` file name) beside the OBJ and
    links them; it needs ``uvs``. ``dtype=np.float64`` writes positions with 17 significant digits
    (evaluation meshes whose coordinates are large next to the errors measured on them).
    """
    path = Path(path)
    if path.suffix.lower() != ".obj":
        raise ValueError(f"write_obj: {path} should end in .obj")
    positions = _positions(vertices, dtype=dtype)
    triangles = _indices(faces, "faces", len(positions), "number of vertices")
    if uvs is None and (face_uvs is not None or texture is not None):
        raise ValueError(f"write_obj({path}): face_uvs and texture need uvs")
    lines = [f"# fastganfit mesh: {len(positions)} vertices, {len(triangles)} triangles\n"]
    files: dict[Path, bytes | str] = {}
    if texture is not None:
        mtl_path, png_path = path.with_suffix(".mtl"), path.with_suffix(".png")
        if texture_name is not None:
            if Path(texture_name).name != texture_name or Path(texture_name).suffix.lower() != ".png":
                raise ValueError(f"write_obj({path}): texture_name must be a .png file name, got {texture_name!r}")
            png_path = path.with_name(texture_name)
        files[png_path] = png_bytes(image_to_uint8(texture, "texture"))
        files[mtl_path] = (
            f"newmtl {MATERIAL_NAME}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd {png_path.name}\n"
        )
        lines.append(f"mtllib {mtl_path.name}\n")
    digits = 9 if positions.dtype == np.float32 else 17
    lines.append(_rows(positions, f"v %.{digits}g %.{digits}g %.{digits}g"))
    if uvs is None:
        lines.append(_rows(triangles + 1, "f %d %d %d"))
    else:
        coords = _numpy(uvs, "uvs")
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"uvs: expected [T, 2], got {list(coords.shape)}")
        if face_uvs is None:
            if len(coords) != len(positions):
                raise ValueError(f"write_obj({path}): face_uvs is needed when uvs has {len(coords)} rows != V")
            corner_uvs = triangles
        else:
            corner_uvs = _indices(face_uvs, "face_uvs", len(coords), "number of uvs")
            if corner_uvs.shape != triangles.shape:
                raise ValueError(f"face_uvs: expected {list(triangles.shape)}, got {list(corner_uvs.shape)}")
        lines.append(_rows(coords.astype(np.float32), "vt %.9g %.9g"))
        if texture is not None:
            lines.append(f"usemtl {MATERIAL_NAME}\n")
        interleaved = np.stack([triangles, corner_uvs], axis=2).reshape(-1, 6) + 1
        lines.append(_rows(interleaved, "f %d/%d %d/%d %d/%d"))
    files[path] = "".join(lines)
    write_files_atomically(files)
    return sorted(files)


def write_ply(
    path: str | os.PathLike, vertices: ArrayLike, faces: ArrayLike, vertex_colors: ArrayLike | None = None
) -> Path:
    """Write a binary little-endian PLY with ``vertices [V, 3]``, ``faces [F, 3]`` and optional colours.

    ``vertex_colors [V, 3]``: float in [0, 1] or uint8.
    """
    path = Path(path)
    if path.suffix.lower() != ".ply":
        raise ValueError(f"write_ply: {path} should end in .ply")
    positions = _positions(vertices)
    triangles = _indices(faces, "faces", len(positions), "number of vertices")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["ply", "format binary_little_endian 1.0", "comment fastganfit", f"element vertex {len(positions)}"]
    header += [f"property float {axis}" for axis in "xyz"]
    if vertex_colors is not None:
        colours = _numpy(vertex_colors, "vertex_colors")
        if colours.shape != positions.shape:
            raise ValueError(f"vertex_colors: expected {list(positions.shape)}, got {list(colours.shape)}")
        if colours.dtype != np.uint8:
            colours = (np.clip(colours.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += [f"property uchar {channel}" for channel in ("red", "green", "blue")]
    header += [f"element face {len(triangles)}", "property list uchar int vertex_indices", "end_header"]
    vertex_rows = np.empty(len(positions), dtype=np.dtype(fields))
    for axis, column in zip("xyz", positions.T, strict=True):
        vertex_rows[axis] = column
    if vertex_colors is not None:
        for channel, column in zip(("red", "green", "blue"), colours.T, strict=True):
            vertex_rows[channel] = column
    face_rows = np.empty(len(triangles), dtype=np.dtype([("count", "u1"), ("indices", "<i4", (3,))]))
    face_rows["count"] = 3
    face_rows["indices"] = triangles
    data = ("\n".join(header) + "\n").encode("ascii") + vertex_rows.tobytes() + face_rows.tobytes()
    write_files_atomically({path: data})
    return path


def _obj_index(token: str, count: int, line_number: int, path: Path) -> int:
    index = int(token)
    resolved = index - 1 if index > 0 else count + index
    if index == 0 or not 0 <= resolved < count:
        raise ValueError(f"{path}:{line_number}: index {index} out of range (have {count})")
    return resolved


def read_obj(path: str | os.PathLike, dtype: type = np.float32) -> MeshData:
    """Read an OBJ's positions, faces (polygons fan-triangulated), UVs and per-corner UV indices.

    ``dtype``: of the positions (``np.float64`` keeps every digit, e.g. for evaluation).

    ``uvs``/``face_uvs`` are returned only when every face corner has a UV index. ``texture`` is the
    ``map_Kd`` image of the first material library, when there is one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OBJ file {path} does not exist")
    vertices: list[list[str]] = []
    uvs: list[list[str]] = []
    faces: list[tuple[int, int, int]] = []
    face_uvs: list[tuple[int, int, int] | None] = []
    material_libraries: list[str] = []
    for line_number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append(parts[1:4])
        elif parts[0] == "vt":
            uvs.append(parts[1:3])
        elif parts[0] == "mtllib" and len(parts) > 1:
            material_libraries.append(line.split(maxsplit=1)[1].strip())
        elif parts[0] == "f":
            corners = [token.split("/") for token in parts[1:]]
            if len(corners) < 3:
                raise ValueError(f"{path}:{line_number}: a face needs at least 3 corners")
            v = [_obj_index(c[0], len(vertices), line_number, path) for c in corners]
            has_uv = all(len(c) > 1 and c[1] for c in corners)
            t = [_obj_index(c[1], len(uvs), line_number, path) for c in corners] if has_uv else None
            for k in range(1, len(corners) - 1):
                faces.append((v[0], v[k], v[k + 1]))
                face_uvs.append((t[0], t[k], t[k + 1]) if t is not None else None)
    if not vertices:
        raise ValueError(f"{path}: no vertices ('v' lines); is this an OBJ file?")
    try:
        positions = np.asarray(vertices, dtype)
        coords = np.asarray(uvs, np.float32).reshape(-1, 2)
    except ValueError as error:
        raise ValueError(f"{path}: malformed 'v' or 'vt' line ({error})") from error
    if positions.shape[1:] != (3,):
        raise ValueError(f"{path}: every 'v' line needs x y z")
    with_uvs = bool(faces) and len(coords) > 0 and all(corner is not None for corner in face_uvs)
    return MeshData(
        vertices=positions,
        faces=np.asarray(faces, np.int64).reshape(-1, 3),
        uvs=coords if with_uvs else None,
        face_uvs=np.asarray(face_uvs, np.int64).reshape(-1, 3) if with_uvs else None,
        texture=_texture_of(path, material_libraries),
    )


def _texture_of(obj_path: Path, material_libraries: list[str]) -> Path | None:
    for library in material_libraries:
        mtl_path = obj_path.parent / library
        if not mtl_path.is_file():
            continue
        match = re.search(r"^\s*map_Kd\s+(.+?)\s*$", mtl_path.read_text(encoding="utf-8", errors="replace"), re.M)
        if match:
            return mtl_path.parent / match.group(1).split()[-1]
    return None


PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


def read_ply(path: str | os.PathLike) -> MeshData:
    """Read a binary little-endian PLY: positions, triangles (polygons fan-triangulated), colours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PLY file {path} does not exist")
    data = path.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (no 'ply' magic or 'end_header')")
    header = data[:end].decode("ascii", errors="replace").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: read_ply reads binary little-endian PLY only")
    elements: list[tuple[str, int, list[list[str]]]] = []
    for line in header:
        parts = line.split()
        if parts and parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts and parts[0] == "property" and elements:
            elements[-1][2].append(parts[1:])
    offset = end + len(b"end_header\n")
    vertices = colours = faces = None
    for name, count, properties in elements:
        if any(p[0] == "list" for p in properties):
            if len(properties) != 1:
                raise ValueError(f"{path}: element {name!r}: only a single list property is supported")
            _, count_type, index_type, _ = properties[0]
            polygons, offset = _read_polygons(data, offset, count, PLY_TYPES[count_type], PLY_TYPES[index_type])
            if name == "face":
                faces = polygons
            continue
        dtype = np.dtype([(p[1], "<" + PLY_TYPES[p[0]]) for p in properties])
        rows = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += dtype.itemsize * count
        if name == "vertex":
            vertices = np.stack([rows[axis] for axis in "xyz"], axis=1).astype(np.float32)
            if {"red", "green", "blue"} <= set(dtype.names):
                colours = np.stack([rows[c] for c in ("red", "green", "blue")], axis=1).astype(np.uint8)
    if vertices is None:
        raise ValueError(f"{path}: no 'vertex' element")
    return MeshData(
        vertices=vertices, faces=np.zeros((0, 3), np.int64) if faces is None else faces, vertex_colors=colours
    )


def _read_polygons(data: bytes, offset: int, count: int, count_type: str, index_type: str) -> tuple[np.ndarray, int]:
    """Read ``count`` list rows starting at ``offset``; fast path when every row is a triangle."""
    triangle_row = np.dtype([("count", "<" + count_type), ("indices", "<" + index_type, (3,))])
    if count and len(data) - offset >= triangle_row.itemsize * count:
        rows = np.frombuffer(data, dtype=triangle_row, count=count, offset=offset)
        if (rows["count"] == 3).all():
            return rows["indices"].astype(np.int64), offset + triangle_row.itemsize * count
    count_size, index_size = np.dtype(count_type).itemsize, np.dtype(index_type).itemsize
    triangles = []
    for _ in range(count):
        corners = int(np.frombuffer(data, "<" + count_type, 1, offset)[0])
        offset += count_size
        polygon = np.frombuffer(data, "<" + index_type, corners, offset).astype(np.int64)
        offset += index_size * corners
        triangles += [(polygon[0], polygon[k], polygon[k + 1]) for k in range(1, corners - 1)]
    return np.asarray(triangles, np.int64).reshape(-1, 3), offset
