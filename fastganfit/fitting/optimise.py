"""Per-image optimisation of FaceParams through GANFit's objective: GANFit++ refinement of regressed parameters,
plain GANFit from the mean face, and multi-image fitting (images of one subject share shape and texture).

All functions take aligned crops ``[B, 3, S, S]`` in [0, 1] with landmarks ``[B, 68, 2]`` (crop pixels), the
form the data pipeline and :mod:`fastganfit.fitting.faces` produce, and run on the crops' device.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from tqdm import tqdm

from fastganfit.fitting.settings import FitSettings
from fastganfit.params import FaceParams
from fastganfit.reconstruction.graph import FaceReconstructionGraph
from fastganfit.regression.module import FastGANFitModule

#: Groups a subject's images share in multi-image fitting; expression, camera and light stay per image.
SHARED_GROUPS: tuple[str, ...] = ("shape", "texture")


@dataclass(frozen=True)
class ObjectiveRecord:
    """The objective at one step of a stage: each active term's batch mean and ``total`` (``terms["total"]``).
    Step ``k < steps`` is the value before the k-th update; step ``steps`` is the value after the last one."""

    stage: str
    step: int
    terms: dict[str, float]

    @property
    def total(self) -> float:
        """The weighted total."""
        return self.terms["total"]


def stage_totals(history: Sequence[ObjectiveRecord], stage: str) -> list[float]:
    """The totals of one stage in step order (the last one after the stage's final update)."""
    return [record.total for record in history if record.stage == stage]


@torch.no_grad()
def regress(module: FastGANFitModule, crops: Tensor, landmarks: Tensor) -> FaceParams:
    """The regressor's FaceParams (batch B) of ``crops [B, 3, S, S]`` with ``landmarks [B, 68, 2]``
    (:meth:`FastGANFitModule.predict`: with the exposure match when the module has it on)."""
    return module.predict(crops, landmarks).detach()


def per_subject_mean(values: Tensor, subjects: Tensor) -> Tensor:
    """``[S, K]``: the mean of ``values [B, K]`` over the images of each subject (``subjects [B]``, 0 .. S-1)."""
    count = int(subjects.max()) + 1
    sums = values.new_zeros(count, values.shape[1]).index_add_(0, subjects, values)
    return sums / torch.bincount(subjects, minlength=count).clamp(min=1).to(values)[:, None]


def share_subject_groups(params: FaceParams, subjects: Tensor) -> FaceParams:
    """``params`` with each of :data:`SHARED_GROUPS` replaced by its mean over the images of the same subject
    (``subjects [B]``, 0 .. S-1): multi-image results without optimisation."""
    groups = params.as_dict()
    for group in SHARED_GROUPS:
        groups[group] = per_subject_mean(groups[group], subjects)[subjects]
    return FaceParams(**groups)


class FitParameters:
    """Leaf tensors being optimised: one ``[B, K]`` leaf per image for most groups and, with ``subjects [B]``,
    one ``[S, K]`` leaf per subject for the :data:`SHARED_GROUPS` (initialised to the subject's mean)."""

    def __init__(self, initial: FaceParams, subjects: Tensor | None = None) -> None:
        self.subjects = subjects
        shared = SHARED_GROUPS if subjects is not None else ()
        self.leaves: dict[str, Tensor] = {}
        for group, values in initial.detach().items():
            start = per_subject_mean(values, subjects) if group in shared else values
            self.leaves[group] = start.clone().requires_grad_(True)
        self.shared = shared

    def params(self) -> FaceParams:
        """The current FaceParams (batch B); differentiable in the leaves."""
        return FaceParams(
            **{group: leaf[self.subjects] if group in self.shared else leaf for group, leaf in self.leaves.items()}
        )

    def optimise_only(self, groups: Sequence[str]) -> None:
        """Let gradients reach the leaves of ``groups`` only."""
        for group, leaf in self.leaves.items():
            leaf.requires_grad_(group in groups)


def check_inputs(crops: Tensor, landmarks: Tensor, params: FaceParams, subjects: Tensor | None) -> None:
    """Raise ``ValueError`` unless the batch's tensors agree in shape."""
    batch = crops.shape[0]
    if crops.ndim != 4 or crops.shape[1] != 3 or crops.shape[2] != crops.shape[3]:
        raise ValueError(f"crops: expected square [B, 3, S, S], got {list(crops.shape)}")
    if landmarks.shape != (batch, 68, 2):
        raise ValueError(f"landmarks: expected [{batch}, 68, 2], got {list(landmarks.shape)}")
    if params.batch_size != batch:
        raise ValueError(f"initial params: batch size {params.batch_size} differs from the crops' {batch}")
    if subjects is not None:
        if subjects.shape != (batch,) or subjects.dtype != torch.long:
            raise ValueError(f"subjects: expected a long tensor [{batch}], got {subjects.dtype} {list(subjects.shape)}")
        if int(subjects.min()) < 0 or len(torch.unique(subjects)) != int(subjects.max()) + 1:
            raise ValueError("subjects: expected indices 0 .. S-1, each used at least once")


def refine(
    graph: FaceReconstructionGraph,
    crops: Tensor,
    landmarks: Tensor,
    initial_params: FaceParams,
    settings: FitSettings,
    subjects: Tensor | None = None,
    progress: bool = False,
) -> tuple[FaceParams, list[ObjectiveRecord]]:
    """Optimise FaceParams from ``initial_params`` (batch B) through ``graph`` and GANFit's objective, stage by stage.

    GANFit++ refinement when ``initial_params`` come from :func:`regress`; GANFit when they are zeros (see
    :func:`fit_from_mean_face`). Each stage runs Adam over its groups for its steps, minimising its loss
    (``settings``; its light colour prior pulls towards ``initial_params``' light colour, or grey, as the stage's
    ``light_colour`` says). ``subjects [B]`` (long, 0 .. S-1): images of one subject share shape and texture, each
    keeps its expression, camera and light. ``progress`` shows a progress bar per stage.

    Returns the final parameters (detached) and the objective's history (:class:`ObjectiveRecord` per step,
    plus one after each stage's last update).
    """
    check_inputs(crops, landmarks, initial_params, subjects)
    initial_params = initial_params.to(crops.device)
    target = graph.target(crops, landmarks)
    leaves = FitParameters(initial_params, None if subjects is None else subjects.to(crops.device))
    history: list[ObjectiveRecord] = []
    for stage in settings.stages:
        if stage.steps == 0:
            continue
        leaves.optimise_only(stage.groups)
        optimiser = torch.optim.Adam(
            [{"params": [leaves.leaves[group]], "lr": stage.learning_rate(group)} for group in stage.groups]
        )
        bar = tqdm(
            range(stage.steps),
            desc=f"fit {stage.name}",
            unit="step",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        )
        steps: list[dict[str, Tensor]] = []
        reference = initial_params.light if stage.light_colour == "start" else None
        for _ in bar:
            optimiser.zero_grad(set_to_none=True)
            total, terms = graph.objective(graph.render(leaves.params(), target), stage.loss, reference)
            total.backward()
            optimiser.step()
            steps.append({name: value.detach() for name, value in terms.items()})
        with torch.no_grad():
            _, terms = graph.objective(graph.render(leaves.params(), target), stage.loss, reference)
        steps.append(terms)
        history.extend(stage_records(stage.name, steps))
    leaves.optimise_only(())
    return leaves.params().detach(), history


def stage_records(stage: str, steps: Sequence[dict[str, Tensor]]) -> list[ObjectiveRecord]:
    """The :class:`ObjectiveRecord` of each step of a stage from the per-step terms (device scalars), read to the
    host in one transfer after the stage (none during it); raises ``FloatingPointError`` naming the first step
    whose objective was not finite."""
    names = list(steps[0])
    values = torch.stack([torch.stack([terms[name].float() for name in names]) for terms in steps]).tolist()
    records = [ObjectiveRecord(stage, step, dict(zip(names, row, strict=True))) for step, row in enumerate(values)]
    for record in records:
        if not math.isfinite(record.total):
            raise FloatingPointError(f"fit stage {stage!r}: the objective is {record.total} at step {record.step}")
    return records


def fit_from_mean_face(
    graph: FaceReconstructionGraph,
    crops: Tensor,
    landmarks: Tensor,
    settings: FitSettings,
    subjects: Tensor | None = None,
    progress: bool = False,
) -> tuple[FaceParams, list[ObjectiveRecord]]:
    """GANFit: :func:`refine` starting from the mean face, mean texture and default light, seen by the camera
    that projects the mean face's landmarks onto ``landmarks`` (:meth:`FaceReconstructionGraph.landmark_camera`)."""
    start = mean_face_start(graph, crops, landmarks)
    return refine(graph, crops, landmarks, start, settings, subjects, progress)


@torch.no_grad()
def mean_face_start(graph: FaceReconstructionGraph, crops: Tensor, landmarks: Tensor) -> FaceParams:
    """All-zero FaceParams (batch B) except the camera ``[B, 7]``: the closed-form landmark camera of
    ``crops [B, 3, S, S]`` with ``landmarks [B, 68, 2]``."""
    start = FaceParams.zeros(graph.sizes, crops.shape[0], device=crops.device, dtype=crops.dtype)
    _, render_landmarks = graph.to_render_frame(crops, landmarks)
    return replace(start, camera=graph.landmark_camera(render_landmarks))
