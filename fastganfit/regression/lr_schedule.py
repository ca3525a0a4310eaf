"""The regressor's learning-rate schedule, assembled from torch's schedulers (stepped once per optimiser step)."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR, StepLR

SCHEDULES = ("constant", "cosine", "step")


def check_schedule(kind: str, total_steps: int | None, warmup_steps: int, min_factor: float, step_size: int,
                   gamma: float) -> None:  # fmt: skip
    """Raise ``ValueError`` for settings :func:`learning_rate_scheduler` cannot honour."""
    if kind not in SCHEDULES:
        raise ValueError(f"learning-rate schedule must be one of {SCHEDULES}, got {kind!r}")
    if kind == "cosine" and total_steps is None:
        raise ValueError("learning-rate schedule: the cosine schedule needs trainer.max_steps or total_steps")
    if (total_steps is not None and total_steps < 1) or warmup_steps < 0 or step_size < 1:
        raise ValueError(
            f"learning-rate schedule: total_steps and step_size must be positive and warmup_steps non-negative, "
            f"got {total_steps}, {step_size}, {warmup_steps}"
        )
    if not 0.0 <= min_factor <= 1.0 or gamma <= 0:
        raise ValueError(f"learning-rate schedule: need 0 <= min_factor <= 1 and gamma > 0, got {min_factor}, {gamma}")


def learning_rate_scheduler(
    optimiser: Optimizer,
    kind: str = "cosine",
    total_steps: int | None = None,
    warmup_steps: int = 0,
    min_factor: float = 0.0,
    step_size: int = 1000,
    gamma: float = 0.1,
) -> LRScheduler:
    """The base rate times a multiplier at optimiser step ``t``: a linear warm-up ``(t + 1) / warmup_steps`` over
    ``warmup_steps`` steps (torch's ``LinearLR``), then

    * ``constant``: 1;
    * ``cosine``: ``CosineAnnealingLR`` from 1 down to ``min_factor`` at ``total_steps``, held there afterwards;
    * ``step``: ``StepLR``, times ``gamma`` every ``step_size`` steps.

    ``conf/scheduler/cosine.yaml`` builds it as a partial (FastGANFitModule gives ``total_steps``, the trainer's
    ``max_steps``, when the config leaves it ``null``); checkpoints from before the scheduler group map their
    ``schedule`` setting onto it (:func:`fastganfit.regression.checkpoint.upgraded_optimiser_settings`).
    """
    check_schedule(kind, total_steps, warmup_steps, min_factor, step_size, gamma)
    schedulers: list[LRScheduler] = []
    milestones: list[int] = []
    if warmup_steps > 0:
        steps = max(warmup_steps - 1, 1)
        schedulers.append(LinearLR(optimiser, start_factor=1.0 / warmup_steps, end_factor=1.0, total_iters=steps))
        milestones.append(warmup_steps)
    if kind == "cosine":
        base_rates = {group.get("initial_lr", group["lr"]) for group in optimiser.param_groups}
        if len(base_rates) > 1:
            raise ValueError("learning-rate schedule: the cosine schedule needs one base rate for all groups")
        decay = max(total_steps - warmup_steps, 1)
        schedulers.append(CosineAnnealingLR(optimiser, T_max=decay, eta_min=min(base_rates) * min_factor))
        # CosineAnnealingLR rises again after T_max: hold min_factor from there on
        schedulers.append(ConstantLR(optimiser, factor=min_factor, total_iters=10**12))
        milestones.append(milestones[-1] + decay if milestones else decay)
    elif kind == "step":
        schedulers.append(StepLR(optimiser, step_size=step_size, gamma=gamma))
    else:
        schedulers.append(ConstantLR(optimiser, factor=1.0, total_iters=0))
    return schedulers[0] if len(schedulers) == 1 else SequentialLR(optimiser, schedulers, milestones)
