"""Constant tensors made once per device and dtype: building a tensor from Python numbers on a GPU is a blocking
host-to-device copy, which would synchronise every training or optimisation step that builds it."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

Values = float | Sequence["Values"]


def _frozen(values: Values) -> float | tuple:
    if isinstance(values, int | float):
        return values
    return tuple(_frozen(value) for value in values)


@lru_cache(maxsize=256)
def _constant(values: float | tuple, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.tensor(values, device=device, dtype=dtype)


def constant(values: Values, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``torch.tensor(values)`` on ``like``'s device with ``dtype`` (default ``like``'s), cached: only the first
    call per device and dtype copies from the host. Do not modify the result in place."""
    return _constant(_frozen(values), like.device, dtype or like.dtype)
