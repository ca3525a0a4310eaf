"""The files of one reconstructed image, written as one unit into ``<output>/<key>/``:

``mesh.obj`` + ``mesh.mtl`` + ``texture.png`` (the mesh in mm, model frame, with its UV texture: the one taken
from the photo, or the fitted model's, see ``texture_source``), ``mesh.glb`` (the same textured mesh as one binary
glTF file, in metres as glTF expects, for any glTF viewer), ``params.npz`` (FaceParams groups and the crop
geometry), ``overlay.png`` (the render over the photo), ``report.png`` (input | render | overlay | model texture |
photo texture | side view) and ``fit.json`` (source, notes, objective); with a photo texture also
``texture_model.png`` (the fitted model's texture) and ``texture_mask.png`` (the photo texture's confidence).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from PIL import Image

from fastganfit.io.atomic_folder import atomic_folder
from fastganfit.io.images import save_png
from fastganfit.io.mesh_export import write_obj

OUTPUT_FILES = (
    "mesh.obj", "mesh.mtl", "texture.png", "mesh.glb", "params.npz", "overlay.png", "report.png", "fit.json"
)
#: Written besides :data:`OUTPUT_FILES` when a photo texture was extracted.
PHOTO_TEXTURE_FILES = ("texture_model.png", "texture_mask.png")
GLTF_METRES_PER_MM = 1e-3


@dataclass(frozen=True)
class MeshTopology:
    """What every fitted mesh of a face model shares: ``faces [F, 3]``, ``uvs [T, 2]``, ``face_uvs [F, 3]``."""

    faces: np.ndarray
    uvs: np.ndarray
    face_uvs: np.ndarray


@dataclass(frozen=True)
class FaceOutputs:
    """One image's results: ``vertices [V, 3]`` (mm), ``texture`` uint8 ``[Ht, Wt, 3]``, ``arrays`` for
    ``params.npz`` (name -> array), ``overlay`` and ``report`` uint8 images and the ``info`` of ``fit.json``;
    with a photo texture, the fitted ``model_texture`` uint8 ``[Ht, Wt, 3]`` and the photo texture's confidence
    ``texture_mask`` uint8 ``[Ht, Wt, 3]`` (grey)."""

    vertices: np.ndarray
    texture: np.ndarray
    arrays: dict[str, np.ndarray]
    overlay: np.ndarray
    report: np.ndarray
    info: dict[str, Any]
    model_texture: np.ndarray | None = None
    texture_mask: np.ndarray | None = None


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez`` of ``arrays`` into bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def glb_bytes(vertices: np.ndarray, topology: MeshTopology, texture: np.ndarray) -> bytes:
    """A binary glTF of the textured mesh: ``vertices [V, 3]`` (mm; written in metres) with ``texture`` uint8
    ``[Ht, Wt, 3]``. glTF has one UV per vertex, so vertices are split where the UV layout has seams (one per
    distinct (vertex, UV) pair); trimesh writes the file."""
    corners = np.stack([topology.faces.reshape(-1), topology.face_uvs.reshape(-1)], axis=1)
    pairs, inverse = np.unique(corners, axis=0, return_inverse=True)
    visual = trimesh.visual.TextureVisuals(uv=topology.uvs[pairs[:, 1]], image=Image.fromarray(texture))
    mesh = trimesh.Trimesh(
        vertices[pairs[:, 0]] * GLTF_METRES_PER_MM, inverse.reshape(-1, 3), visual=visual, process=False
    )
    return mesh.export(file_type="glb")


def write_face_outputs(folder: str | Path, topology: MeshTopology, outputs: FaceOutputs) -> Path:
    """Write :data:`OUTPUT_FILES` (and :data:`PHOTO_TEXTURE_FILES` when given) into ``folder``: all of them appear
    together (replacing an older result) or, on any error, none (the folder keeps what it had)."""
    folder = Path(folder)
    with atomic_folder(folder) as staging:
        write_obj(
            staging / "mesh.obj", outputs.vertices, topology.faces, topology.uvs, topology.face_uvs,
            texture=outputs.texture, texture_name="texture.png",
        )  # fmt: skip
        (staging / "mesh.glb").write_bytes(glb_bytes(outputs.vertices, topology, outputs.texture))
        (staging / "params.npz").write_bytes(npz_bytes(outputs.arrays))
        save_png(outputs.overlay, staging / "overlay.png")
        save_png(outputs.report, staging / "report.png")
        if outputs.model_texture is not None:
            save_png(outputs.model_texture, staging / "texture_model.png")
        if outputs.texture_mask is not None:
            save_png(outputs.texture_mask, staging / "texture_mask.png")
        (staging / "fit.json").write_text(json.dumps(outputs.info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return folder
