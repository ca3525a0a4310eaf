"""Ground-truth vertex error of reconstructions in millimetres (synthetic data, where vertices correspond)."""

from __future__ import annotations

import torch
from pytorch3d.ops import corresponding_points_alignment
from torch import Tensor


def similarity_align(source: Tensor, target: Tensor) -> Tensor:
    """``source [B, N, 3]`` moved by the least-squares similarity (Umeyama: scale, rotation, translation; pytorch3d's
    ``corresponding_points_alignment``) onto the corresponding ``target [B, N, 3]``; returns ``[B, N, 3]``."""
    transform = corresponding_points_alignment(source, target, estimate_scale=True)
    return transform.s[:, None, None] * source @ transform.R + transform.T[:, None, :]


def vertex_error_mm(predicted: Tensor, target: Tensor, align: bool = False) -> Tensor:
    """Mean Euclidean distance ``[B]`` between corresponding vertices ``predicted`` and ``target`` ``[B, V, 3]``
    (mm). ``align=False``: as given (both in the model frame); ``align=True``: after :func:`similarity_align`."""
    if predicted.shape != target.shape or predicted.ndim != 3 or predicted.shape[-1] != 3:
        raise ValueError(
            f"vertex_error_mm: expected two [B, V, 3] tensors, got {list(predicted.shape)} and {list(target.shape)}"
        )
    if align:
        predicted = similarity_align(predicted.double(), target.double()).to(target.dtype)
    return torch.linalg.vector_norm(predicted - target, dim=-1).mean(1)
