"""The synthetic benchmark: reconstructions of held-out synthetic faces against their known 3D ground truth.

A fixed-seed set of faces from the synthetic generator (:class:`~fastganfit.data.synthetic.SyntheticFaceSource`,
a seed kept apart from the training and validation sets) is reconstructed by each method: the mean face
(the baseline), the checkpoint's regressor, and the regressor followed by GANFit++ refinement. Each
reconstruction is scored with ``micc_pair_error(..., protocol="any_topology")`` (``benchmarks/micc_protocols.py``:
similarity alignment on the 68 landmarks, crop to ``crop_radius`` mm around the ground truth's nose tip,
similarity ICP, symmetric mean point-to-surface distance in mm), so the numbers read like MICC numbers.

Outputs: a table (mean, median and standard deviation per method), the cumulative error curves and the
per-vertex error maps (distance of each aligned reconstruction vertex to the ground-truth surface, drawn on
the meshes: the mean over the set on the mean face, and a few example faces).

Colour (:mod:`fastganfit.benchmarks.colour`): half the faces are lit by coloured light of known colour, half by
the training data's near-white light; each method's albedo delta-E (CIELAB, front skin texels of the UV albedo),
light chroma error and render-vs-input delta-E go in the same table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fastganfit.benchmarks.colour import (
    albedo_delta_e,
    front_skin_texels,
    light_chroma_error,
    masked_delta_e,
)
from fastganfit.benchmarks.figures import cumulative_error_curves, error_colours, error_map_grid
from fastganfit.benchmarks.micc_protocols import NOSE_TIP, micc_pair_error
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.data.synthetic import SyntheticFaceSource, SyntheticSettings
from fastganfit.fitting.optimise import mean_face_start, refine, regress
from fastganfit.fitting.reconstructor import FaceReconstructor
from fastganfit.fitting.settings import FitSettings
from fastganfit.geometry.closest_point import TriangleMesh
from fastganfit.params import FaceParams
from fastganfit.regression.component_values import ComponentRequest
from fastganfit.regression.module import FastGANFitModule
from fastganfit.render.lighting import light_colour
from fastganfit.render.vertex_colours import render_vertex_colours
from fastganfit.texture.procedural import ProceduralTexture

#: Seed of the held-out set; training uses 0 and validation 1 (conf/data/synthetic.yaml).
BENCHMARK_SEED = 2026
SIDE_VIEW_YAW = 0.9

Method = Callable[[torch.Tensor, torch.Tensor], FaceParams]
#: Coloured lights of the colour half of the set: tints of 0.5 to 1 times this (tint_light).
LIGHT_TINT = 0.3


@dataclass
class MethodErrors:
    """One method's results: ``errors [N]`` (MICC-style symmetric error per face, mm), ``per_vertex
    [N, V]`` (each aligned reconstruction vertex's distance to the ground-truth surface, mm; NaN outside
    the crop sphere) and the colour errors ``albedo [N]``, ``light_chroma [N]`` and ``render [N]``
    (:mod:`fastganfit.benchmarks.colour`)."""

    errors: np.ndarray
    per_vertex: np.ndarray
    albedo: np.ndarray
    light_chroma: np.ndarray
    render: np.ndarray


def select_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def reconstruction_methods(module: FastGANFitModule, refine_settings: FitSettings | None) -> dict[str, Method]:
    """The methods compared, name -> ``(crops [B, 3, S, S], landmarks [B, 68, 2]) -> FaceParams`` (batch B)."""

    def mean_face(crops: torch.Tensor, landmarks: torch.Tensor) -> FaceParams:
        return mean_face_start(module.graph, crops, landmarks)

    def regression(crops: torch.Tensor, landmarks: torch.Tensor) -> FaceParams:
        return regress(module, crops, landmarks)

    methods: dict[str, Method] = {"mean face": mean_face, "regression": regression}
    if refine_settings is not None:

        def refined(crops: torch.Tensor, landmarks: torch.Tensor) -> FaceParams:
            params, _ = refine(module.graph, crops, landmarks, regress(module, crops, landmarks), refine_settings)
            return params

        methods["regression + GANFit++"] = refined
    return methods


@dataclass
class ColourTruth:
    """The colour ground truth of a batch: UV albedo ``texture [B, 3, R, R]``, the skin ``texels [1, 1, R, R]`` it is
    scored on and the light's colour ``light [B, 3]`` (:func:`~fastganfit.render.lighting.light_colour`)."""

    texture: torch.Tensor
    texels: torch.Tensor
    light: torch.Tensor


@torch.no_grad()
def colour_errors(
    module: FastGANFitModule, params: FaceParams, crops: torch.Tensor, landmarks: torch.Tensor, truth: ColourTruth
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per face ``[B]``: the albedo delta-E over the skin texels, the light chroma error (%) and the delta-E of the
    render against the input over the rendered face."""
    graph = module.graph
    result = graph.render(params, graph.target(crops, landmarks))
    albedo = albedo_delta_e(result.texture, truth.texture, truth.texels)
    chroma = light_chroma_error(light_colour(graph.renderer.lighting, params.light), truth.light)
    render = masked_delta_e(result.render.image, result.image, result.render.mask)
    return albedo, chroma, render


class SyntheticBenchmark:
    """``evaluate.py benchmark=synthetic ckpt=...`` (conf/benchmark/synthetic.yaml; see the module docstring).

    ``ckpt``: a FastGANFitModule checkpoint written by ``train.py``. ``refine``: the GANFit++ stages
    (:class:`FitSettings`, as ``conf/fit/refine.yaml`` builds them, or their ``{name: {steps, lr, groups, loss,
    lr_scales}}`` mapping), or ``None`` to skip that row.
    ``n`` faces of set ``seed``, rendered at the checkpoint's crop size, reconstructed ``batch_size`` at a time
    on ``device`` (``auto``: CUDA when available). ``crop_radius``, ``icp_tolerance`` and
    ``icp_max_iterations`` as in MICC. Error maps use a 0..``max_error_mm`` scale and show ``num_examples`` faces.
    ``model_values``: dotted model config keys set on the checkpoint's config before building it (evaluate.py's
    component values, e.g. ``{"identity.weights": path}``), or a :class:`ComponentRequest` with those and the
    component options named on the command line, which must describe the trained components (checked when the
    checkpoint is read).
    The last ``coloured_fraction`` of the faces are lit by coloured light (``SyntheticSettings.light_tint`` =
    ``light_tint``), the others by the training data's near-white light; the colour errors cover both.
    ``texture``: the texture model that paints the faces (``SyntheticSettings.texture``), as the training data's
    (``data=synthetic`` paints with the default, ``pca_portraits``): an albedo from another model is not one the
    checkpoint's texture model can reproduce.
    """

    def __init__(
        self,
        ckpt: str | None,
        refine: FitSettings | Mapping[str, Mapping[str, Any]] | None = None,
        n: int = 50,
        seed: int = BENCHMARK_SEED,
        batch_size: int = 8,
        crop_radius: float = 95.0,
        icp_tolerance: float = 1e-3,
        icp_max_iterations: int = 100,
        max_error_mm: float = 4.0,
        num_examples: int = 3,
        map_size: int = 192,
        device: str = "auto",
        progress: bool = True,
        model_values: Mapping[str, Any] | ComponentRequest | None = None,
        light_tint: float = LIGHT_TINT,
        coloured_fraction: float = 0.5,
        texture: str = "pca_portraits",
    ) -> None:
        if not ckpt:
            raise ValueError("benchmark=synthetic needs ckpt=<checkpoint of a train.py run>, e.g. the demo's "
                             "outputs/train/<run>/full/checkpoints/last.ckpt")
        for name, value, low in (("n", n, 1), ("batch_size", batch_size, 1), ("num_examples", num_examples, 0),
                                 ("map_size", map_size, 16), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"benchmark.{name} must be an integer >= {low}, got {value!r}")
        if not 0.0 <= coloured_fraction <= 1.0 or not 0.0 <= light_tint < 1.0:
            raise ValueError(f"benchmark.coloured_fraction must be in [0, 1] and benchmark.light_tint in [0, 1), got "
                             f"{coloured_fraction!r} and {light_tint!r}")
        if not max_error_mm > 0:
            raise ValueError(f"benchmark.max_error_mm must be positive, got {max_error_mm!r}")
        self.ckpt = str(ckpt)
        self.refine_settings = refine if refine is None or isinstance(refine, FitSettings) else (
            FitSettings.from_stages(refine))
        self.n, self.seed, self.batch_size = n, seed, batch_size
        self.crop_radius, self.icp_tolerance, self.icp_max_iterations = crop_radius, icp_tolerance, icp_max_iterations
        self.max_error_mm, self.num_examples, self.map_size = max_error_mm, min(num_examples, n), map_size
        self.device = select_device(device)
        self.progress = progress
        self.model = model_values if isinstance(model_values, ComponentRequest) else ComponentRequest(model_values)
        self.light_tint = float(light_tint)
        self.coloured_from = n - round(coloured_fraction * n)
        self.settings = SyntheticSettings(texture=texture)

    def run(self) -> EvaluationReport:
        """Reconstruct the held-out faces with every method, score them, and build the report with its figures."""
        module = FaceReconstructor.load_checkpoint(self.ckpt, self.model.values, self.model.options,
                                                   device=self.device).regressor
        methods = reconstruction_methods(module, self.refine_settings)
        white = SyntheticFaceSource(self.seed, module.graph.crop_size, self.settings)
        coloured = SyntheticFaceSource(self.seed, module.graph.crop_size, replace(self.settings,
                                                                                  light_tint=self.light_tint))
        regions = ProceduralTexture(white.model, white.texture.resolution)  # the skin regions of the UV layout
        texels = front_skin_texels(regions).to(self.device)
        gt_faces = white.model.faces.numpy()
        faces = module.graph.model.faces.numpy()
        results: dict[str, list[tuple[float, np.ndarray]]] = {name: [] for name in methods}
        colours: dict[str, list[tuple[np.ndarray, ...]]] = {name: [] for name in methods}
        inputs, shown = [], {name: [] for name in methods}
        bar = tqdm(total=self.n, desc="synthetic benchmark", unit="face", file=sys.stderr, disable=not self.progress)
        with bar:
            for source, sample_batch in batches(white, coloured, self.n, self.batch_size, self.coloured_from):
                crops, landmarks, truth = sample_tensors(sample_batch, self.device)
                colour_truth = self.colour_truth(source, sample_batch, texels)
                gt_landmarks = source.model.landmarks(truth)
                for name, method in methods.items():
                    params = method(crops, landmarks).detach()
                    colours[name].append(colour_errors(module, params, crops, landmarks, colour_truth))
                    with torch.no_grad():
                        vertices = module.graph.model(params.shape, params.expression)
                    predicted_landmarks = module.graph.model.landmarks(vertices)
                    for row in range(vertices.shape[0]):
                        results[name].append(self.score(
                            truth[row].cpu().numpy(), gt_faces, gt_landmarks[row].cpu().numpy(),
                            vertices[row].cpu().numpy(), faces, predicted_landmarks[row].cpu().numpy(),
                        ))
                    shown[name].extend(vertices[: max(self.num_examples - len(shown[name]), 0)].cpu())
                inputs.extend(crops[: max(self.num_examples - len(inputs), 0)].cpu())
                bar.update(crops.shape[0])
        scored = {
            name: MethodErrors(
                np.array([error for error, _ in rows]), np.stack([vertex for _, vertex in rows]),
                *(np.concatenate(parts) for parts in zip(*colours[name], strict=True)),
            )
            for name, rows in results.items()
        }
        return self.report(module, scored, torch.stack(inputs) if inputs else None, shown)

    def colour_truth(
        self, source: SyntheticFaceSource, samples: list[dict[str, Any]], texels: torch.Tensor
    ) -> ColourTruth:
        """The ground-truth albedo and light colour of a batch of ``source``'s samples."""
        latents = torch.stack([torch.from_numpy(sample["params"]["texture"]) for sample in samples])
        lights = torch.stack([torch.from_numpy(sample["params"]["light"]) for sample in samples])
        with torch.no_grad():
            texture = source.texture(latents)
            light = light_colour(source.renderer.lighting, lights)
        return ColourTruth(texture.to(self.device), texels, light.to(self.device))

    def score(
        self, gt_vertices: np.ndarray, gt_faces: np.ndarray, gt_landmarks: np.ndarray,
        vertices: np.ndarray, faces: np.ndarray, landmarks: np.ndarray,
    ) -> tuple[float, np.ndarray]:
        """MICC-style error of one reconstruction (mm) and its per-vertex distances ``[V]`` (NaN outside the crop)."""
        pair = micc_pair_error((vertices, faces, landmarks), (gt_vertices, gt_faces, gt_landmarks), "any_topology",
                               self.crop_radius, self.icp_tolerance, max_iterations=self.icp_max_iterations)
        moved = pair.transform.apply(vertices.astype(np.float64))
        inside = np.linalg.norm(moved - gt_landmarks[NOSE_TIP], axis=1) <= self.crop_radius
        per_vertex = np.full(vertices.shape[0], np.nan)
        per_vertex[inside] = TriangleMesh(gt_vertices, gt_faces).distances(moved[inside])
        return pair.error, per_vertex

    def report(
        self, module: FastGANFitModule, scored: dict[str, MethodErrors], inputs: torch.Tensor | None,
        shown: dict[str, list[torch.Tensor]],
    ) -> EvaluationReport:
        """The results table, notes, per-face details and the two figures."""
        rows = [[name, float(r.errors.mean()), float(np.median(r.errors)), float(r.errors.std()), int(r.errors.size),
                 float(r.albedo.mean()), float(r.light_chroma.mean()), float(np.nanmean(r.render))]
                for name, r in scored.items()]
        notes = [
            f"{self.n} held-out synthetic faces (seed {self.seed}, crop {module.graph.crop_size} px); checkpoint "
            f"{self.ckpt}",
            f"error: MICC protocol (landmark similarity alignment, {self.crop_radius:g} mm crop around the nose tip, "
            "similarity ICP, symmetric mean point-to-surface distance)",
            f"colour: faces {self.coloured_from} onwards are lit by coloured light (tint {self.light_tint / 2:g} to "
            f"{self.light_tint:g}), the others by the training data's near-white light; albedo ΔE: mean CIEDE2000 over "
            "the front skin texels of the UV albedo; light chroma: 100 |c/mean(c) - c_true/mean(c_true)| of the "
            "light's mean colour on a white surface; render ΔE: the render against the input over the rendered face "
            "(fastganfit.benchmarks.colour)",
        ]
        if self.refine_settings is not None:
            stages = ", ".join(f"{stage.name} {stage.steps} steps" for stage in self.refine_settings.stages)
            notes.append(f"GANFit++ refinement: {stages}")
        figures = {
            "cumulative_error": cumulative_error_curves(
                {name: r.errors for name, r in scored.items()}, f"Synthetic benchmark ({self.n} faces)"
            ),
            "error_maps": self.error_maps(module, scored, inputs, shown),
        }
        details = {
            name: {
                "errors_mm": r.errors.round(4).tolist(),
                "albedo_delta_e": r.albedo.round(3).tolist(),
                "light_chroma_error_percent": r.light_chroma.round(3).tolist(),
                "render_delta_e": r.render.round(3).tolist(),
            }
            for name, r in scored.items()
        }
        columns = ["method", "mean (mm)", "median (mm)", "std (mm)", "faces", "albedo ΔE", "light chroma (%)",
                   "render ΔE"]
        return EvaluationReport("Synthetic benchmark", columns, rows, notes, details, figures)

    def error_maps(
        self, module: FastGANFitModule, scored: dict[str, MethodErrors], inputs: torch.Tensor | None,
        shown: dict[str, list[torch.Tensor]],
    ) -> np.ndarray:
        """Rows: the inputs, then one per method. Columns: the mean per-vertex error over the set on the mean face
        (front and side), then the example faces' reconstructions coloured by their errors."""
        faces = module.graph.model.faces.cpu()
        mean_face = module.graph.model.mean_vertices(2).cpu().float()
        blank = np.ones((self.map_size, self.map_size, 3))
        examples = self.num_examples if inputs is not None else 0
        panels: list[list[np.ndarray]] = []
        if examples:
            pictures = torch.nn.functional.interpolate(inputs.float(), size=(self.map_size,) * 2, mode="bilinear",
                                                       antialias=True, align_corners=False)
            panels.append([blank, blank, *(picture.numpy() for picture in pictures)])
        views = torch.zeros(2, 7)
        views[1, 1] = SIDE_VIEW_YAW
        for name, result in scored.items():
            average = mean_over_faces(result.per_vertex)
            colours = torch.from_numpy(error_colours(np.stack([average, average]), self.max_error_mm)).float()
            means, _ = render_vertex_colours(mean_face, faces, colours, views, self.map_size)
            row = [image.numpy() for image in means]
            if examples:
                vertices = torch.stack(shown[name][:examples]).float()
                colours = torch.from_numpy(error_colours(result.per_vertex[:examples], self.max_error_mm)).float()
                images, _ = render_vertex_colours(vertices, faces, colours, torch.zeros(examples, 7), self.map_size)
                row += [image.numpy() for image in images]
            panels.append(row)
        titles = ["mean error (front)", "mean error (side)", *(f"face {k + 1}" for k in range(examples))]
        row_titles = (["input"] if examples else []) + list(scored)
        return error_map_grid(panels, row_titles, titles, self.max_error_mm, "Per-vertex error (mm)")


def mean_over_faces(per_vertex: np.ndarray) -> np.ndarray:
    """``[V]``: each vertex's mean error over the faces where it was measured (NaN where it never was)."""
    measured = ~np.isnan(per_vertex)
    counts = measured.sum(0)
    totals = np.where(measured, per_vertex, 0.0).sum(0)
    return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def batches(
    white: SyntheticFaceSource, coloured: SyntheticFaceSource, n: int, batch_size: int, coloured_from: int
) -> Iterator[tuple[SyntheticFaceSource, list[dict[str, Any]]]]:
    """The ``n`` samples, rendered ``batch_size`` at a time: indices below ``coloured_from`` by ``white``, the
    others by ``coloured`` (the same seed, coloured light); each batch with its source."""
    for first, last, source in ((0, min(coloured_from, n), white), (coloured_from, n, coloured)):
        for start in range(first, last, batch_size):
            yield source, source.render(list(range(start, min(start + batch_size, last))))


def sample_tensors(samples: list[dict[str, Any]], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``crops [B, 3, S, S]`` in [0, 1], ``landmarks [B, 68, 2]`` and ground-truth ``vertices [B, V, 3]`` on
    ``device`` from synthetic samples."""
    crops = torch.stack([torch.from_numpy(sample["image"]).permute(2, 0, 1) for sample in samples]).float() / 255.0
    landmarks = torch.stack([torch.from_numpy(sample["landmarks"]) for sample in samples]).float()
    vertices = torch.stack([torch.from_numpy(sample["vertices"]) for sample in samples]).float()
    return crops.to(device), landmarks.to(device), vertices.to(device)

