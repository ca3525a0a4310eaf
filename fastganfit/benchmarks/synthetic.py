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
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fastganfit.benchmarks.figures import cumulative_error_curves, error_colours, error_map_grid
from fastganfit.benchmarks.micc_protocols import NOSE_TIP, micc_pair_error
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.data.synthetic import SyntheticFaceSource
from fastganfit.evaluation.closest_point import TriangleMesh
from fastganfit.fitting.optimise import refine, regress
from fastganfit.fitting.settings import FitSettings
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.module import FastGANFitModule
from fastganfit.render.vertex_colours import render_vertex_colours

#: Seed of the held-out set; training uses 0 and validation 1 (conf/data/synthetic.yaml).
BENCHMARK_SEED = 2026
SIDE_VIEW_YAW = 0.9

Method = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class MethodErrors:
    """One method's results: ``errors [N]`` (MICC-style symmetric error per face, mm) and ``per_vertex
    [N, V]`` (each aligned reconstruction vertex's distance to the ground-truth surface, mm; NaN outside
    the crop sphere)."""

    errors: np.ndarray
    per_vertex: np.ndarray


def select_device(device: str) -> torch.device:
    """``auto``: CUDA when available, else CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def reconstruction_methods(module: FastGANFitModule, refine_settings: FitSettings | None) -> dict[str, Method]:
    """The methods compared, name -> ``(crops [B, 3, S, S], landmarks [B, 68, 2]) -> vertices [B, V, 3]``."""

    def mean_face(crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        return module.graph.model.mean_vertices(crops.shape[0]).to(crops)

    def regression(crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        params = regress(module, crops, landmarks)
        return module.graph.model(params.shape, params.expression)

    methods: dict[str, Method] = {"mean face": mean_face, "regression": regression}
    if refine_settings is not None:

        def refined(crops: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
            params, _ = refine(module.graph, crops, landmarks, regress(module, crops, landmarks), refine_settings)
            with torch.no_grad():
                return module.graph.model(params.shape, params.expression)

        methods["regression + GANFit++"] = refined
    return methods


class SyntheticBenchmark:
    """``evaluate.py benchmark=synthetic ckpt=...`` (conf/benchmark/synthetic.yaml; see the module docstring).

    ``ckpt``: a FastGANFitModule checkpoint written by ``train.py``. ``refine``: the GANFit++ stages
    (:class:`FitSettings`, as ``conf/fit/refine.yaml`` builds them, or their ``{name: {steps, lr, groups, loss,
    lr_scales}}`` mapping), or ``None`` to skip that row.
    ``n`` faces of set ``seed``, rendered at the checkpoint's crop size, reconstructed ``batch_size`` at a time
    on ``device`` (``auto``: CUDA when available). ``crop_radius``, ``icp_tolerance`` and
    ``icp_max_iterations`` as in MICC. Error maps use a 0..``max_error_mm`` scale and show ``num_examples`` faces.
    ``model_values``: dotted model config keys set on the checkpoint's config before building it (evaluate.py's
    component values, e.g. ``{"identity.weights": path}``).
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
        model_values: Mapping[str, Any] | None = None,
    ) -> None:
        if not ckpt:
            raise ValueError("benchmark=synthetic needs ckpt=<checkpoint of a train.py run>, e.g. the demo's "
                             "outputs/train/<run>/full/checkpoints/last.ckpt")
        for name, value, low in (("n", n, 1), ("batch_size", batch_size, 1), ("num_examples", num_examples, 0),
                                 ("map_size", map_size, 16), ("seed", seed, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"benchmark.{name} must be an integer >= {low}, got {value!r}")
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
        self.model_values = dict(model_values or {})

    def run(self) -> EvaluationReport:
        """Reconstruct the held-out faces with every method, score them, and build the report with its figures."""
        module = load_fast_ganfit(self.ckpt, self.device, self.model_values)
        methods = reconstruction_methods(module, self.refine_settings)
        source = SyntheticFaceSource(self.seed, module.graph.crop_size)
        gt_faces = source.model.faces.numpy()
        faces = module.graph.model.faces.numpy()
        results: dict[str, list[tuple[float, np.ndarray]]] = {name: [] for name in methods}
        inputs, shown = [], {name: [] for name in methods}
        bar = tqdm(total=self.n, desc="synthetic benchmark", unit="face", file=sys.stderr, disable=not self.progress)
        with bar:
            for sample_batch in batches(source, self.n, self.batch_size):
                crops, landmarks, truth = sample_tensors(sample_batch, self.device)
                gt_landmarks = source.model.landmarks(truth)
                for name, method in methods.items():
                    vertices = method(crops, landmarks).detach()
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
            name: MethodErrors(np.array([error for error, _ in rows]), np.stack([vertex for _, vertex in rows]))
            for name, rows in results.items()
        }
        return self.report(module, scored, torch.stack(inputs) if inputs else None, shown)

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
        rows = [[name, float(r.errors.mean()), float(np.median(r.errors)), float(r.errors.std()), int(r.errors.size)]
                for name, r in scored.items()]
        notes = [
            f"{self.n} held-out synthetic faces (seed {self.seed}, crop {module.graph.crop_size} px); checkpoint "
            f"{self.ckpt}",
            f"error: MICC protocol (landmark similarity alignment, {self.crop_radius:g} mm crop around the nose tip, "
            "similarity ICP, symmetric mean point-to-surface distance)",
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
        details = {name: {"errors_mm": r.errors.round(4).tolist()} for name, r in scored.items()}
        return EvaluationReport("Synthetic benchmark", ["method", "mean (mm)", "median (mm)", "std (mm)", "faces"],
                                rows, notes, details, figures)

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


def batches(source: SyntheticFaceSource, n: int, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """The ``n`` samples of ``source``, rendered ``batch_size`` at a time."""
    for start in range(0, n, batch_size):
        yield source.render(list(range(start, min(start + batch_size, n))))


def sample_tensors(samples: list[dict[str, Any]], device: torch.device) -> tuple[torch.Tensor, ...]:
    """``crops [B, 3, S, S]`` in [0, 1], ``landmarks [B, 68, 2]`` and ground-truth ``vertices [B, V, 3]`` on
    ``device`` from synthetic samples."""
    crops = torch.stack([torch.from_numpy(sample["image"]).permute(2, 0, 1) for sample in samples]).float() / 255.0
    landmarks = torch.stack([torch.from_numpy(sample["landmarks"]) for sample in samples]).float()
    vertices = torch.stack([torch.from_numpy(sample["vertices"]) for sample in samples]).float()
    return crops.to(device), landmarks.to(device), vertices.to(device)

