"""``evaluate.py benchmark=pairs``: the same-person benchmark on a folder of real photo pairs (see
:mod:`fastganfit.benchmarks.pairs`) for a checkpoint's regression and GANFit++, with the mean face, the detected
landmarks and dlib's descriptor as baselines in one table, and a picture of the best and worst pairs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fastganfit.benchmarks.figures import image_grid
from fastganfit.benchmarks.pair_faces import detect_pair_faces
from fastganfit.benchmarks.pairs import (
    COEFFICIENTS,
    MESH,
    PairsEvaluation,
    evaluate_baselines,
    evaluate_pairs,
)
from fastganfit.benchmarks.photo_pairs import read_photo_pairs
from fastganfit.benchmarks.report import EvaluationReport
from fastganfit.benchmarks.retrieval import retrieval_scores
from fastganfit.benchmarks.synthetic import reconstruction_methods, select_device
from fastganfit.fitting.faces import graph_crop_template
from fastganfit.fitting.settings import FitSettings
from fastganfit.fitting.views import ViewRenderer
from fastganfit.perception.landmarks import Landmarker
from fastganfit.regression.checkpoint import load_fast_ganfit
from fastganfit.regression.module import FastGANFitModule

REFINED = "regression + GANFit++"
COLUMNS = ["method", "from", "pairs", "missing", "rank-1 (%)", "top-5 (%)", "median rank", "ROC AUC"]


def positive_or_none(name: str, value: Any) -> int | None:
    """``value`` as a count >= 1 (``None`` stays ``None``); ``ValueError`` naming ``benchmark.<name>`` otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"benchmark.{name} must be an integer >= 1 or null, got {value!r}")
    return value


class PairsBenchmark:
    """``evaluate.py benchmark=pairs ckpt=... benchmark.root=...`` (conf/benchmark/pairs.yaml).

    ``root``: the photo pairs (:func:`~fastganfit.benchmarks.photo_pairs.read_photo_pairs`); ``pairs``: only the
    first that many (``None``: all). ``ckpt``: a train.py checkpoint, whose regressor and graph reconstruct the
    faces; ``landmarks``: the face detector + 68 landmarks. ``refine``: the GANFit++ stages (``None`` skips that
    row) run on the first ``refine_pairs`` pairs (``None``: all). ``crop_radius``: the face region of the
    neutral meshes (mm around the nose tip). ``cache_dir``: where the detected faces are kept between runs.
    ``figure_pairs``: best and worst pairs shown. ``model_values``: as :class:`SyntheticBenchmark`'s.
    """

    def __init__(
        self, root: str | None, ckpt: str | None, landmarks: Landmarker,
        refine: FitSettings | Mapping[str, Mapping[str, Any]] | None = None, pairs: int | None = None,
        refine_pairs: int | None = 50, crop_radius: float = 95.0, batch_size: int = 8, device: str = "auto",
        cache_dir: str | None = None, figure_pairs: int = 3, progress: bool = True,
        model_values: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        if not root:
            raise ValueError("benchmark=pairs needs benchmark.root=<folder with A/ and B/ photos, or a manifest.json>")
        if not ckpt:
            raise ValueError("benchmark=pairs needs ckpt=<checkpoint of a train.py run>")
        self.pairs, self.refine_pairs = positive_or_none("pairs", pairs), positive_or_none("refine_pairs", refine_pairs)
        if positive_or_none("batch_size", batch_size) is None or isinstance(figure_pairs, bool) or figure_pairs < 0:
            raise ValueError(f"benchmark.batch_size must be >= 1 and benchmark.figure_pairs >= 0, got {batch_size!r} "
                             f"and {figure_pairs!r}")
        if not crop_radius > 0:
            raise ValueError(f"benchmark.crop_radius must be positive (mm), got {crop_radius!r}")
        self.root, self.ckpt, self.landmarker = Path(root).expanduser(), str(ckpt), landmarks
        self.refine_settings = refine if refine is None or isinstance(refine, FitSettings) else (
            FitSettings.from_stages(refine))
        self.crop_radius, self.batch_size, self.figure_pairs = float(crop_radius), batch_size, figure_pairs
        self.device, self.cache_dir, self.progress = select_device(device), cache_dir, progress
        self.model_values = dict(model_values or {})

    def run(self) -> EvaluationReport:
        """Detect the faces, reconstruct them with every method, score every descriptor, build the report."""
        pairs = read_photo_pairs(self.root).subset(self.pairs)
        module = load_fast_ganfit(self.ckpt, self.device, self.model_values)
        graph = module.graph
        template = graph_crop_template(graph, graph.crop_size)
        faces = detect_pair_faces(pairs, self.landmarker, template, graph.crop_size, self.cache_dir, self.progress)
        evaluation = evaluate_baselines(faces, template)
        common = {"model": graph.model, "crop_radius": self.crop_radius, "batch_size": self.batch_size,
                  "device": self.device, "progress": self.progress}  # fmt: skip
        evaluate_pairs(faces, reconstruction_methods(module, None), evaluation=evaluation, **common)
        refined = None
        if self.refine_settings is not None:
            methods = reconstruction_methods(module, self.refine_settings)
            refined = evaluate_pairs(faces.subset(self.refine_pairs), {REFINED: methods[REFINED]}, **common)
        return self.report(module, evaluation, refined)

    def rows(self, evaluation: PairsEvaluation, refined: PairsEvaluation | None) -> list[list[Any]]:
        """The table: one row per (method, descriptor); GANFit++'s subset also scores the regression on it."""
        scored = dict(evaluation.scores)
        if refined is not None:
            if len(refined.faces.pairs) < len(evaluation.faces.pairs):
                count = len(refined.faces.pairs)
                for descriptor in (COEFFICIENTS, MESH):
                    a, b = evaluation.faces.pair_rows(evaluation.descriptors[("regression", descriptor)])
                    scored[(f"regression (GANFit++'s {count} pairs)", descriptor)] = retrieval_scores(a[:count],
                                                                                                   b[:count])
            scored.update(refined.scores)
        return [[row, descriptor, s.n, s.missing, 100.0 * s.rank1, 100.0 * s.top5, s.median_rank, s.auc]
                for (row, descriptor), s in scored.items()]

    def report(self, module: FastGANFitModule, evaluation: PairsEvaluation, refined: PairsEvaluation | None
               ) -> EvaluationReport:  # fmt: skip
        """The results table, notes (what was left out and why), per-pair details and the figure."""
        faces = evaluation.faces
        pairs = faces.pairs
        missing = faces.missing()
        complete = int(faces.complete().sum())
        notes = [
            f"{len(pairs)} pairs of {pairs.root} ({len(pairs.left_out)} left out: one photograph twice, or a photo "
            f"without its pair); chance over the {complete} with both faces: rank-1 {100.0 / complete:.2f} %, "
            f"median rank {(complete + 1) / 2:g}, AUC 0.5; rank-1 / top-5 / median rank: A->B and B->A averaged, ties "
            "at their expectation",
            f"no face found in {len(missing)} of {2 * len(pairs)} photos: "
            + ("; ".join(f"{path} ({reason})" for path, reason in missing.items()) or "none"),
            f"checkpoint {self.ckpt}; crops {faces.crop_size} px; neutral meshes: the face region within "
            f"{self.crop_radius:g} mm of the nose tip, similarity-aligned onto the mean face, RMS vertex distance",
            "seconds per face: " + ", ".join(f"{name} {seconds:.3f}" for name, seconds in
                                             {**evaluation.seconds_per_face,
                                              **(refined.seconds_per_face if refined else {})}.items())
            + f" ({self.device})",
        ]
        if self.refine_settings is not None:
            stages = ", ".join(f"{stage.name} {stage.steps} steps" for stage in self.refine_settings.stages)
            notes.append(f"GANFit++ refinement ({stages}) on the first {len(refined.faces.pairs)} pairs")
        shown = refined if refined is not None else evaluation
        method = REFINED if refined is not None else "regression"
        details = {
            "scores": {f"{row} | {descriptor}": score.as_dict() for (row, descriptor), score in
                       {**evaluation.scores, **(refined.scores if refined else {})}.items()},
            "missing_photos": missing,
            "left_out_pairs": pairs.left_out,
            "pair_ranks": {
                f"{name} | {MESH}": dict(zip(result.faces.pairs.ids, np.round(result.pair_ranks(name, MESH), 2)
                                             .tolist(), strict=True))
                for result in filter(None, (evaluation, refined)) for name in result.params
            },
        }
        figures = {"best_worst_pairs": self.figure(module, shown, method)} if self.figure_pairs else {}
        return EvaluationReport("Same-person benchmark (photo pairs)", COLUMNS, self.rows(evaluation, refined),
                                notes, details, figures)

    def figure(self, module: FastGANFitModule, evaluation: PairsEvaluation, method: str) -> np.ndarray:
        """The ``figure_pairs`` best and worst pairs by ``method``'s neutral-mesh rank: both photos' crops and both
        neutral meshes (expression zero: what is compared) turned sideways."""
        faces = evaluation.faces
        ranks = evaluation.pair_ranks(method, MESH)
        complete = np.flatnonzero(~np.isnan(ranks))
        order = complete[np.argsort(ranks[complete], kind="stable")]
        count = min(self.figure_pairs, len(order) // 2) or len(order)
        chosen = [("best", k) for k in order[:count]] + [("worst", k) for k in order[::-1][:count]]
        renderer = ViewRenderer(module.graph, faces.crop_size)
        panels, titles = [], []
        for label, person in chosen:
            indices = np.array([person, person + len(faces.pairs)])
            crops, _ = faces.inputs(indices, self.device)
            params = evaluation.face_params(method, indices).to(self.device)
            neutral = replace(params, expression=torch.zeros_like(params.expression))
            side = renderer(crops, neutral).side.cpu().numpy()
            panels.append([crops[0].cpu().numpy(), crops[1].cpu().numpy(), side[0], side[1]])
            titles.append(f"{label}: {faces.pairs.ids[person]}\nrank {ranks[person]:.1f}")
        return image_grid(panels, titles, ["photo A", "photo B", "A: neutral, side", "B: neutral, side"],
                          f"{method}: best and worst pairs ({MESH}, {len(order)} pairs)")

