"""Learning-rate schedules as picklable multipliers of the base rate (for ``torch.optim.lr_scheduler.LambdaLR``)."""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "cosine", "step")


@dataclass(frozen=True)
class LearningRateSchedule:
    """Multiplier of the base learning rate at optimiser step ``t``: a linear warm-up from ``1 / warmup_steps``
    to 1 over ``warmup_steps`` steps, then

    * ``constant``: 1;
    * ``cosine``: ``min_factor + (1 - min_factor) (1 + cos(pi u)) / 2`` with ``u = (t - warmup) / (total - warmup)``
      clamped to [0, 1] (``total_steps`` is the end of the decay);
    * ``step``: ``gamma ** ((t - warmup) // step_size)``.
    """

    kind: str = "cosine"
    total_steps: int = 1
    warmup_steps: int = 0
    min_factor: float = 0.0
    step_size: int = 1000
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"learning-rate schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if self.total_steps < 1 or self.warmup_steps < 0 or self.step_size < 1:
            raise ValueError(
                f"learning-rate schedule: total_steps and step_size must be positive and warmup_steps non-negative, "
                f"got {self.total_steps}, {self.step_size}, {self.warmup_steps}"
            )
        if not 0.0 <= self.min_factor <= 1.0 or self.gamma <= 0:
            raise ValueError(
                f"learning-rate schedule: need 0 <= min_factor <= 1 and gamma > 0, got {self.min_factor}, {self.gamma}"
            )

    def __call__(self, step: int) -> float:
        """The multiplier (a float) at optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        if self.kind == "cosine":
            progress = min(after / max(self.total_steps - self.warmup_steps, 1), 1.0)
            return self.min_factor + (1.0 - self.min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.kind == "step":
            return self.gamma ** (after // self.step_size)
        return 1.0
