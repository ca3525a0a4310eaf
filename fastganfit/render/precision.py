"""Float32 regions under mixed precision: geometry, camera, lighting and rasterisation never run in bf16/fp16.

At 700 mm from the camera bf16 resolves about 4 mm (8 bits of mantissa), so a morphable-model sum, a camera
matmul or a barycentric coordinate computed under ``torch.autocast`` would move vertices by millimetres and
landmarks by pixels. Networks (identity, heatmaps, regressor, texture generator) run in the trainer's precision;
the code below them switches autocast off and computes in float32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


@contextmanager
def float32_region(device: torch.device) -> Iterator[None]:
    """Switch autocast off on ``device``'s type inside the block (inputs still need :func:`to_float32`)."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def to_float32(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in float32 (float64 ones are kept: they are already at least as precise)."""
    return tuple(t if t.dtype in (torch.float32, torch.float64) else t.float() for t in tensors)
