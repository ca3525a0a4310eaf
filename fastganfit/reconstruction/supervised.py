"""Supervised 3D terms for samples with ground truth (synthetic faces, scan-based data sets).

GANFit's objective (:mod:`fastganfit.reconstruction.losses`) is self-supervised: it compares renders with the
input. Where a sample carries its true mesh or parameters (``vertices.npy``, ``params.npz``, see
:mod:`fastganfit.data.schema`), these terms compare the reconstruction with them directly:

- :func:`vertex_loss`: mean distance between corresponding vertices (mm), optionally after the least-squares
  similarity that best aligns the prediction with the truth (then scale, rotation and placement are free);
- :func:`parameter_loss`: mean squared difference of chosen parameter groups (shape, expression, ...).

:class:`SupervisedLoss` weights them, averages them over the samples that have ground truth and is held by
:class:`~fastganfit.reconstruction.losses.GANFitLoss` as its ``supervised`` part (``conf/loss/*.yaml``:
``supervised.vertex``, ``supervised.params``; 0 by default, so the paper's self-supervised recipe is unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from fastganfit.params import GROUPS, FaceParams
from fastganfit.reconstruction.vertex_error import similarity_align

SUPERVISED_TERMS: tuple[str, ...] = ("vertex", "params")


def vertex_loss(predicted: Tensor, target: Tensor, similarity: bool = False) -> Tensor:
    """Mean Euclidean distance ``[B]`` between corresponding vertices ``predicted`` and ``target`` ``[B, V, 3]``
    (mm): ``mean_v ||p_v - t_v||_2``. ``similarity=True``: ``predicted`` is first moved by the least-squares
    similarity (scale, rotation, translation; Umeyama via pytorch3d) onto ``target``, and gradients flow through
    that alignment, so only the similarity-invariant part of the shape is supervised."""
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 3:
        raise ValueError(
            f"vertex_loss: expected two [B, V, 3] tensors, got {list(predicted.shape)} and {list(target.shape)}"
        )
    if similarity:
        predicted = similarity_align(predicted, target)
    return torch.linalg.vector_norm(predicted - target, dim=-1).mean(dim=1)


def parameter_loss(
    predicted: Mapping[str, Tensor], target: Mapping[str, Tensor], groups: Sequence[str] = ("shape", "expression")
) -> Tensor:
    """``sum_g mean_k (p_gk - t_gk)^2`` per sample over parameter ``groups`` (each ``[B, K_g]``) -> ``[B]``.

    ``predicted`` and ``target`` map group names to coefficients of the same face model; a group missing from
    either, or of a different size, is an error naming it."""
    if not groups:
        raise ValueError("parameter_loss: no parameter groups given")
    total: Tensor | None = None
    for group in groups:
        if group not in predicted or group not in target:
            side = "prediction" if group not in predicted else "ground truth"
            raise ValueError(f"parameter_loss: the {side} has no {group!r} parameters (has {sorted(target)})")
        p, t = predicted[group], target[group]
        if p.shape != t.shape or p.ndim != 2:
            raise ValueError(
                f"parameter_loss: {group!r} must be [B, K] in both, got {list(p.shape)} and {list(t.shape)} "
                "(ground truth of another face model?)"
            )
        term = (p - t.to(p)).square().mean(dim=1) if p.shape[1] else p.new_zeros(p.shape[0])
        total = term if total is None else total + term
    return total


class SupervisedLoss(nn.Module):
    """Weighted supervised terms averaged over the samples with ground truth:
    ``total = vertex * mean_gt(vertex_loss) + params * mean_gt(parameter_loss)``.

    ``vertex``, ``params``: weights (non-negative; 0 switches a term off). ``similarity``: the vertex term after a
    similarity alignment (:func:`vertex_loss`). ``groups``: the parameter groups :func:`parameter_loss` compares.
    """

    def __init__(
        self,
        vertex: float = 0.0,
        params: float = 0.0,
        similarity: bool = True,
        groups: Sequence[str] = ("shape", "expression"),
    ) -> None:
        super().__init__()
        self.weights = {"vertex": float(vertex), "params": float(params)}
        negative = {name: weight for name, weight in self.weights.items() if weight < 0}
        if negative:
            raise ValueError(f"SupervisedLoss: weights must be non-negative, got {negative}")
        unknown = sorted(set(groups) - set(GROUPS))
        if unknown or not groups:
            raise ValueError(f"SupervisedLoss: groups must be a non-empty subset of {list(GROUPS)}, got {list(groups)}")
        self.similarity = bool(similarity)
        self.groups = tuple(groups)

    @property
    def active_terms(self) -> list[str]:
        """Terms with a positive weight, in :data:`SUPERVISED_TERMS` order."""
        return [name for name in SUPERVISED_TERMS if self.weights[name] > 0]

    def forward(
        self,
        vertices: Tensor,
        params: FaceParams,
        target_vertices: Tensor | None = None,
        target_params: Mapping[str, Tensor] | None = None,
        has_ground_truth: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Total (scalar) and ``{term: mean over samples with ground truth (detached)}`` for every active term.

        ``vertices [B, V, 3]`` (mm, model frame) and ``params`` are the reconstruction; ``target_vertices
        [B, V, 3]`` and ``target_params`` (group -> ``[B, K]``) the ground truth; ``has_ground_truth [B]`` (bool,
        default all) marks the samples that have it (others hold anything, e.g. zeros, and count for nothing). A
        batch without any ground truth gives 0. A missing input of an active term raises ``ValueError``.
        """
        mask = (
            torch.ones(vertices.shape[0], dtype=torch.bool, device=vertices.device)
            if has_ground_truth is None
            else has_ground_truth.to(device=vertices.device, dtype=torch.bool)
        )
        if mask.shape != vertices.shape[:1]:
            raise ValueError(
                f"SupervisedLoss: has_ground_truth must be [B] = [{vertices.shape[0]}], got {list(mask.shape)}"
            )
        weight = mask.to(vertices.dtype)
        count = weight.sum().clamp(min=1.0)
        terms: dict[str, Tensor] = {}
        for name in self.active_terms:
            if name == "vertex":
                if target_vertices is None:
                    raise ValueError(
                        f"SupervisedLoss: the vertex term (weight {self.weights[name]}) needs target_vertices"
                    )
                target = target_vertices.to(vertices)
                if target.shape != vertices.shape:
                    raise ValueError(
                        f"SupervisedLoss: target_vertices {list(target.shape)} do not match the model's vertices "
                        f"{list(vertices.shape)} (ground truth of another face model or topology?)"
                    )
                # samples without ground truth compare with themselves: zero loss and a well-posed alignment
                target = torch.where(mask[:, None, None], target, vertices.detach())
                terms[name] = vertex_loss(vertices, target, self.similarity)
            else:
                if target_params is None:
                    raise ValueError(
                        f"SupervisedLoss: the params term (weight {self.weights[name]}) needs target_params"
                    )
                terms[name] = parameter_loss(params.as_dict(), target_params, self.groups)
        total = vertices.new_zeros(())
        logs: dict[str, Tensor] = {}
        for name, value in terms.items():
            mean = (value * weight).sum() / count
            total = total + self.weights[name] * mean
            logs[name] = mean.detach()
        return total, logs
