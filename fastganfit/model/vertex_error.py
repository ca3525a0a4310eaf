"""Ground-truth vertex error of reconstructions in millimetres (synthetic data, where vertices correspond)."""

from __future__ import annotations

import torch
from torch import Tensor


def similarity_align(source: Tensor, target: Tensor) -> Tensor:
    """``source [B, N, 3]`` moved by the least-squares similarity (Umeyama: scale, rotation, translation)
    onto the corresponding ``target [B, N, 3]``; returns ``[B, N, 3]``."""
    source_mean, target_mean = source.mean(1, keepdim=True), target.mean(1, keepdim=True)
    centred_source, centred_target = source - source_mean, target - target_mean
    covariance = centred_target.transpose(1, 2) @ centred_source / source.shape[1]
    left, singular, right = torch.linalg.svd(covariance)
    sign = torch.sign(torch.linalg.det(left) * torch.linalg.det(right))
    correction = torch.ones_like(singular)
    correction[:, 2] = sign
    rotation = left @ torch.diag_embed(correction) @ right
    variance = centred_source.square().sum((1, 2)) / source.shape[1]
    scale = (singular * correction).sum(1) / variance.clamp(min=1e-12)
    return scale[:, None, None] * centred_source @ rotation.transpose(1, 2) + target_mean


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
