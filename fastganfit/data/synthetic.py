"""Synthetic faces with ground truth: random faces rendered into the face-shard schema.

Each sample draws identity, expression, a :class:`ProceduralTexture` latent, pose (yaw up to +-45 deg,
pitch up to +-20 deg, small roll), light (near white; ``SyntheticSettings.light_tint`` gives it a known colour, for
the colour benchmark), a small translation / focal jitter and a random background
(a smooth colour field blended with a gradient, plus noise), and renders them with :class:`FaceRenderer`
directly in the crop frame (``crop_transform`` is the identity). The mesh has holes at the eyes and
the mouth, so eyes (sclera, iris, pupil) and a dark mouth interior are painted into the background
behind them. Landmarks are the renderer's projected landmarks; ``params.npz`` holds the ground-truth
``shape``, ``expression``, ``texture`` (latent), ``camera`` and ``light`` and ``vertices.npy`` the mesh
in mm, model frame.

Every sample is drawn from its own generator seeded by ``(seed, index)``, so a sample does not depend
on the batch size or on ``n``, and the same seed writes byte-identical shards.

Command line: ``fastganfit-synthetic output=DIR n=N seed=S [preview=K] ...`` (:mod:`fastganfit.cli.synthetic`,
options in ``conf/synthetic.yaml``; see ``docs/data.md``).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tqdm import tqdm

from fastganfit.data.face_shards import MANIFEST_NAME, FaceShardWriter, read_face_manifest
from fastganfit.data.random_faces import sample_random_faces
from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.io.images import image_to_uint8
from fastganfit.perception.crop import DEFAULT_CROP_SIZE
from fastganfit.render.camera import LOG_FOCAL, TX, TY, TZ, PerspectiveCamera
from fastganfit.render.face_renderer import FaceRenderer
from fastganfit.render.lighting import PhongLighting
from fastganfit.texture.pca import PCATexture, load_portrait_texture_prior
from fastganfit.texture.procedural import LEFT_EYE, RIGHT_EYE, ProceduralTexture

INNER_LIPS = list(range(60, 68))
IDENTITY_TRANSFORM = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
SUPERSAMPLE = 4  # painted eyes and mouth are drawn at 4x and averaged down (antialiased edges)


SYNTHETIC_TEXTURES = ("procedural", "pca_portraits")
FRAME_MARGIN = 0.02  # landmarks keep this fraction of the crop side from its border
MAX_FRAMING_DRAWS = 50


@dataclass(frozen=True)
class SyntheticSettings:
    """How synthetic faces are drawn (recorded in the manifest). Angles in degrees, translations in mm."""

    shape_std: float = 1.0
    expression_max: float = 0.6
    expression_fraction: float = 0.15
    max_yaw_degrees: float = 45.0
    max_pitch_degrees: float = 20.0
    max_roll_degrees: float = 8.0
    max_shift_mm: float = 8.0  # sideways / vertical translation (about 8 px at 224)
    max_depth_mm: float = 30.0  # towards / away from the camera
    max_log_focal: float = 0.05  # about +-5 % scale
    texture_resolution: int = 128
    background_noise: float = 0.03  # largest per-pixel noise standard deviation
    light_tint: float = 0.0  # largest coloured-light tint (0: the near-white lights of sample_random_faces)
    coloured_light_fraction: float = 1.0  # with light_tint: the chance that a face is lit by a tinted light
    texture: str = "procedural"  # the texture model that paints the faces: procedural or pca_portraits

    def __post_init__(self) -> None:
        if self.texture not in SYNTHETIC_TEXTURES:
            raise ValueError(f"synthetic setting texture must be one of {SYNTHETIC_TEXTURES}, got {self.texture!r}")
        for item in fields(self):
            if item.name == "texture":
                continue
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
                raise ValueError(f"synthetic setting {item.name} must be a finite non-negative number, got {value!r}")
        if self.texture_resolution < 8 or not isinstance(self.texture_resolution, int):
            raise ValueError(f"texture_resolution must be an integer of at least 8, got {self.texture_resolution!r}")
        if self.coloured_light_fraction > 1:
            raise ValueError(f"coloured_light_fraction must be in [0, 1], got {self.coloured_light_fraction!r}")


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The generator of sample ``index`` of the set ``seed`` (independent streams via numpy's SeedSequence)."""
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) >> 1)


def sample_params(
    model: MorphableModel,
    texture_dim: int,
    generator: torch.Generator,
    settings: SyntheticSettings,
    translation_scale: float = 10.0,
) -> dict[str, torch.Tensor]:
    """One face's ground truth: ``shape [Ks]``, ``expression [Ke]``, ``texture [texture_dim]``, ``camera [7]``,
    ``light [10]`` (Phong), each 1-D float32. ``translation_scale``: the camera's mm per translation unit."""
    faces = sample_random_faces(
        model,
        1,
        generator,
        shape_std=settings.shape_std,
        expression_max=settings.expression_max,
        expression_fraction=settings.expression_fraction,
        max_yaw_degrees=settings.max_yaw_degrees,
        max_pitch_degrees=settings.max_pitch_degrees,
        max_roll_degrees=settings.max_roll_degrees,
    )
    camera = framing_jitter(faces.camera, settings, generator, translation_scale)[0]
    texture = torch.randn(texture_dim, generator=generator)
    light = faces.light[0]
    if settings.light_tint > 0:  # from a stream of its own: the same faces as without the tint, in a coloured light
        tint_stream = torch.Generator().manual_seed(generator.initial_seed() + 1)
        fraction = settings.coloured_light_fraction
        if fraction >= 1 or torch.rand(1, generator=tint_stream) < fraction:
            light = tint_light(light, settings.light_tint, tint_stream)
    return {
        "shape": faces.shape[0],
        "expression": faces.expression[0],
        "texture": texture,
        "camera": camera,
        "light": light,
    }


def framing_jitter(
    camera: torch.Tensor, settings: SyntheticSettings, generator: torch.Generator, translation_scale: float = 10.0
) -> torch.Tensor:
    """``camera [B, 7]`` with the framing of real crops drawn uniformly: a sideways / vertical shift up to
    ``max_shift_mm``, a depth change up to ``max_depth_mm`` and a scale up to ``max_log_focal`` (one ``[B, 4]``
    draw from ``generator``). ``translation_scale``: the camera's mm per translation unit."""
    jitter = torch.rand(camera.shape[0], 4, generator=generator) * 2 - 1
    framed = camera.clone()
    framed[:, TX] = jitter[:, 0] * settings.max_shift_mm / translation_scale
    framed[:, TY] = jitter[:, 1] * settings.max_shift_mm / translation_scale
    framed[:, TZ] = jitter[:, 2] * settings.max_depth_mm / translation_scale
    framed[:, LOG_FOCAL] = jitter[:, 3] * settings.max_log_focal
    return framed


def tint_light(light: torch.Tensor, max_tint: float, generator: torch.Generator) -> torch.Tensor:
    """A Phong ``light [10]`` whose ambient and directional colours are both multiplied by ``1 + t``: ``t`` a
    zero-mean colour offset (a random hue in the chroma plane) of length between ``max_tint / 2`` and ``max_tint``,
    so the light keeps its intensity and gains a known colour."""
    draw = torch.rand(2, generator=generator)
    angle, length = 2 * math.pi * draw[0], max_tint * (0.5 + 0.5 * draw[1])
    red_green = torch.tensor([1.0, -1.0, 0.0]) / math.sqrt(2.0)
    yellow_blue = torch.tensor([1.0, 1.0, -2.0]) / math.sqrt(6.0)
    tint = 1.0 + length * (angle.cos() * red_green + angle.sin() * yellow_blue)
    tinted = light.clone()
    tinted[0:3] = (1.0 + light[0:3]) * tint - 1.0
    tinted[3:6] = light[3:6] * tint
    return tinted


def random_background(size: int, generator: torch.Generator, max_noise: float = 0.03) -> torch.Tensor:
    """A background ``[3, size, size]`` in [0, 1]: a smooth random colour field (a 2x2 to 5x5 grid upsampled
    bicubically) blended with a linear gradient between two colours at a random angle, partly desaturated
    (walls and rooms rather than neon), plus pixel noise."""

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    cells = 2 + int(uniform(1) * 4)
    field = uniform(1, 3, cells, cells) * 0.9 + 0.05
    field = F.interpolate(field, size=(size, size), mode="bicubic", align_corners=True)[0]
    angle = uniform(1) * 2 * math.pi
    axis = torch.linspace(-0.5, 0.5, size)
    ramp = (axis[None, :] * angle.cos() + axis[:, None] * angle.sin()) / math.sqrt(0.5) + 0.5
    start, end = uniform(3, 1, 1) * 0.9 + 0.05, uniform(3, 1, 1) * 0.9 + 0.05
    gradient = start + (end - start) * ramp.clamp(0, 1)
    blend, saturation = uniform(1), 0.25 + 0.6 * uniform(1)
    colour = blend * field + (1 - blend) * gradient
    grey = colour.mean(0, keepdim=True)
    noise = torch.randn(3, size, size, generator=generator) * uniform(1) * max_noise
    return (grey + saturation * (colour - grey) + noise).clamp(0, 1)


def _polygon_coverage(polygons: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Antialiased coverage ``[size, size]`` in [0, 1] of closed ``polygons`` (each ``[P, 2]`` pixel points)."""
    canvas = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in polygons:
        # pixel centre (x=j) spans [j - 0.5, j + 0.5]: shift by half a pixel into the supersampled grid
        points = (polygon + 0.5) * SUPERSAMPLE
        draw.polygon([tuple(point) for point in points.tolist()], fill=255)
    array = np.asarray(canvas, dtype=np.float32).reshape(size, SUPERSAMPLE, size, SUPERSAMPLE)
    return array.mean(axis=(1, 3)) / 255.0


def _scaled(points: np.ndarray, factor: float) -> np.ndarray:
    centre = points.mean(axis=0, keepdims=True)
    return centre + (points - centre) * factor


def _disc(centre: np.ndarray, radius: float, count: int = 24) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return centre + radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def paint_eyes_and_mouth(background: torch.Tensor, landmarks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``background [3, S, S]`` with eyes and a dark mouth interior painted where the mesh has holes.

    ``landmarks [68, 2]``: the face's projected landmarks (pixels).

    Regions are the (slightly enlarged) eye and inner-lip polygons; the rendered face covers everything
    but what shows through its holes.
    """
    size = background.shape[-1]
    points = landmarks.detach().double().numpy()
    colours = torch.rand(3, generator=generator)
    sclera = torch.tensor([0.86, 0.82, 0.78]) * (0.85 + 0.15 * colours[0])
    irises = torch.tensor([[0.30, 0.18, 0.10], [0.42, 0.30, 0.16], [0.28, 0.38, 0.45], [0.30, 0.36, 0.22]])
    iris = irises[int(colours[1] * len(irises)) % len(irises)] * (0.7 + 0.6 * colours[2])
    eyes = [_scaled(points[group], 1.35) for group in (RIGHT_EYE, LEFT_EYE)]
    eye_mask = _polygon_coverage(eyes, size)
    iris_mask = _polygon_coverage([_disc(eye.mean(0), 0.2 * np.ptp(eye[:, 0])) for eye in eyes], size) * eye_mask
    pupil_mask = _polygon_coverage([_disc(eye.mean(0), 0.08 * np.ptp(eye[:, 0])) for eye in eyes], size) * eye_mask
    mouth_mask = _polygon_coverage([_scaled(points[INNER_LIPS], 1.25)], size)
    image = background.clone()
    for mask, colour in (
        (eye_mask, sclera),
        (iris_mask, iris),
        (pupil_mask, torch.tensor([0.03, 0.03, 0.03])),
        (mouth_mask, torch.tensor([0.22, 0.06, 0.06])),
    ):
        weight = torch.from_numpy(mask)[None]
        image = image * (1 - weight) + colour.view(3, 1, 1) * weight
    return image


def synthetic_texture_model(settings: SyntheticSettings, model: MorphableModel) -> ProceduralTexture | PCATexture:
    """The texture model that paints synthetic faces (``settings.texture``) at ``settings.texture_resolution``: the
    procedural one on ``model``'s UV layout, or the real-skin PCA prior (ICT layout only)."""
    if settings.texture == "procedural":
        return ProceduralTexture(model, settings.texture_resolution)
    return load_portrait_texture_prior(settings.texture_resolution)


class SyntheticFaceSource:
    """Renders synthetic samples of one seed: ``samples(range(...))`` yields :meth:`FaceShardWriter.write`
    keyword arguments. Holds the face model, the texture model (``settings.texture``) and a torch-backend renderer."""

    def __init__(
        self,
        seed: int,
        crop_size: int = DEFAULT_CROP_SIZE,
        settings: SyntheticSettings | None = None,
        model: MorphableModel | None = None,
    ) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 16:
            raise ValueError(f"crop_size must be an integer of at least 16, got {crop_size!r}")
        self.seed = seed
        self.crop_size = crop_size
        self.settings = settings or SyntheticSettings()
        self.model = model or MorphableModel.ict()
        self.texture = synthetic_texture_model(self.settings, self.model)
        self.renderer = FaceRenderer.from_model(
            self.model, camera=PerspectiveCamera(), lighting=PhongLighting(), image_size=crop_size, backend="torch"
        )

    def key(self, index: int) -> str:
        """The sample key of ``index`` (unique within a seed)."""
        return f"synthetic_s{self.seed}_{index:08d}"

    def _sample_framed(self, generator: torch.Generator) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Parameters and vertices ``[1, V, 3]`` of one face whose 68 landmarks all lie inside the crop
        (with a margin of ``FRAME_MARGIN`` of its side), as in real aligned crops; redraws otherwise."""
        scale = self.renderer.camera.translation_scale
        low = FRAME_MARGIN * self.crop_size
        high = self.crop_size - 1 - low
        for _ in range(MAX_FRAMING_DRAWS):
            params = sample_params(self.model, self.texture.latent_dim, generator, self.settings, scale)
            vertices = self.model(params["shape"][None], params["expression"][None])
            points = self.renderer.camera.project(
                self.model.landmarks(vertices), params["camera"][None], (self.crop_size,) * 2
            )[0, :, :2]
            if points.min() >= low and points.max() <= high:
                return params, vertices
        raise RuntimeError(
            f"synthetic faces: no face inside the {self.crop_size}px crop after {MAX_FRAMING_DRAWS} draws; "
            "reduce the pose, shift or shape ranges"
        )

    @torch.no_grad()
    def render(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Render the samples ``indices`` as one batch; returns writer keyword arguments per sample."""
        generators = [sample_generator(self.seed, index) for index in indices]
        # geometry and textures per sample: batched reductions could change the last bits with the batch size
        framed = [self._sample_framed(gen) for gen in generators]
        params = [p for p, _ in framed]
        vertices = torch.cat([v for _, v in framed])
        batch = {name: torch.stack([p[name] for p in params]) for name in params[0]}
        textures = torch.cat([self.texture(p["texture"][None]) for p in params])
        landmarks = self.renderer.camera.project(self.model.landmarks(vertices), batch["camera"], (self.crop_size,) * 2)
        backgrounds = torch.stack(
            [
                paint_eyes_and_mouth(
                    random_background(self.crop_size, gen, self.settings.background_noise), points[:, :2], gen
                )
                for gen, points in zip(generators, landmarks, strict=True)
            ]
        )
        output = self.renderer(vertices, textures, batch["camera"], batch["light"], backgrounds)
        samples = []
        for row, index in enumerate(indices):
            points = output.landmarks[row]
            box = [*points.min(0).values.tolist(), *points.max(0).values.tolist()]
            metadata = {
                "source": f"synthetic:seed={self.seed}:index={index}",
                "box": box,
                "crop_transform": IDENTITY_TRANSFORM,
                "crop_size": self.crop_size,
                "landmarker": "synthetic",
                "landmark_visible": output.landmark_visibility[row].tolist(),
            }
            samples.append(
                {
                    "key": self.key(index),
                    "image": image_to_uint8(output.image[row]),
                    "landmarks": points.numpy(),
                    "metadata": metadata,
                    "params": {name: value.numpy() for name, value in params[row].items()},
                    "vertices": vertices[row].numpy(),
                }
            )
        return samples

    def samples(self, indices: Sequence[int], batch_size: int = 8) -> Iterator[dict[str, Any]]:
        """Render ``indices`` in batches of ``batch_size`` (the output does not depend on it)."""
        for start in range(0, len(indices), batch_size):
            yield from self.render(indices[start : start + batch_size])


def synthetic_set_is_current(
    folder: str | os.PathLike,
    n: int,
    seed: int,
    crop_size: int = DEFAULT_CROP_SIZE,
    settings: SyntheticSettings | Mapping[str, Any] | None = None,
    **_: Any,
) -> bool:
    """Whether ``folder`` holds a finished synthetic set drawn as :func:`generate_synthetic_faces` with these
    arguments would draw it (its ``manifest.json`` records ``n``, ``seed``, ``crop_size`` and the settings); other
    keyword arguments (``max_per_shard``, ...) do not change the faces and are ignored."""
    if not (Path(folder) / MANIFEST_NAME).is_file():
        return False
    manifest = read_face_manifest(folder)
    settings = SyntheticSettings(**settings) if isinstance(settings, Mapping) else settings or SyntheticSettings()
    generator = manifest.get("generator", {})
    expected = {**asdict(settings), "crop_size": crop_size}
    recorded = {name: generator.get(name, getattr(SyntheticSettings(), name, None)) for name in expected}
    return manifest.get("samples") == n and manifest.get("seed") == seed and recorded == expected


def generate_synthetic_faces(
    output_dir: str | os.PathLike,
    n: int,
    seed: int,
    crop_size: int = DEFAULT_CROP_SIZE,
    max_per_shard: int = 1000,
    batch_size: int = 8,
    prefix: str = "synthetic",
    overwrite: bool = False,
    settings: SyntheticSettings | Mapping[str, Any] | None = None,
    model: MorphableModel | None = None,
    progress: bool = True,
) -> list[Path]:
    """Render ``n`` synthetic faces of set ``seed`` into face shards and ``manifest.json`` in ``output_dir``.

    Shards and manifest are written atomically (the manifest last). ``settings``: a :class:`SyntheticSettings` or
    its keyword arguments (as a config gives them). ``model`` defaults to the embedded ICT model. Returns the
    shard paths.
    """
    if isinstance(settings, Mapping):
        settings = SyntheticSettings(**settings)
    for name, value, low in (("n", n, 1), ("batch_size", batch_size, 1), ("max_per_shard", max_per_shard, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    source = SyntheticFaceSource(seed, crop_size, settings, model)
    bar = tqdm(total=n, desc="synthetic faces", unit="face", file=sys.stderr, disable=not progress)
    with bar, FaceShardWriter(output_dir, prefix, max_per_shard, overwrite) as writer:
        for sample in source.samples(range(n), batch_size):
            writer.write(**sample)
            bar.update(1)
    camera, renderer = source.renderer.camera, source.renderer
    writer.write_manifest(
        source="synthetic",
        seed=seed,
        generator={
            **asdict(source.settings),
            "crop_size": crop_size,
            "texture_model": source.settings.texture,
            "texture_dim": source.texture.latent_dim,
            "lighting": "phong",
            "camera": {
                "distance": camera.distance,
                "focal": camera.focal,
                "translation_scale": camera.translation_scale,
            },
            "renderer_backend": renderer.backend,
            "num_vertices": source.model.num_vertices,
        },
    )
    return writer.close()
