"""Settings of per-image optimisation: stages, each with its steps, learning rate, groups and loss weights.

GANFit (from the mean face) and GANFit++ (refining a regressed start) run the same stages with different
numbers: an alignment stage (landmarks + regularisers, geometry only), then the full objective on every
group. ``conf/fit/refine.yaml`` and ``conf/fit/ganfit.yaml`` hold them; :meth:`FitSettings.from_stages`
builds them from those configs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fastganfit.params import GROUPS
from fastganfit.reconstruction.losses import GANFitLoss

#: What a stage's light colour prior pulls towards (:attr:`StageSettings.light_colour`).
LIGHT_COLOURS = ("start", "grey")


@dataclass(frozen=True)
class StageSettings:
    """One optimisation stage: Adam over the parameter ``groups`` for ``steps`` steps at learning rate ``lr``
    (times ``lr_scales[group]`` for a group, default 1), minimising ``loss``. ``light_colour``: what the loss's
    light colour prior (``light_chroma``) pulls the light's colour towards: ``start``, the colour of the light
    the fit started from (GANFit++: the regressor's estimate; GANFit from the mean face: grey), or ``grey``."""

    name: str
    steps: int
    lr: float
    groups: tuple[str, ...]
    loss: GANFitLoss
    lr_scales: Mapping[str, float] = field(default_factory=dict)
    light_colour: str = "start"

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(self.groups))
        if self.light_colour not in LIGHT_COLOURS:
            raise ValueError(f"fit stage {self.name!r}: light_colour must be one of {list(LIGHT_COLOURS)}, got "
                             f"{self.light_colour!r}")
        object.__setattr__(self, "lr_scales", dict(self.lr_scales))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise ValueError(f"fit stage {self.name!r}: steps must be a non-negative integer, got {self.steps!r}")
        if not self.lr > 0:
            raise ValueError(f"fit stage {self.name!r}: lr must be positive, got {self.lr!r}")
        unknown = sorted(set(self.groups) - set(GROUPS))
        if unknown or not self.groups:
            raise ValueError(
                f"fit stage {self.name!r}: groups must be a non-empty subset of {list(GROUPS)}, got {list(self.groups)}"
            )
        stray = sorted(set(self.lr_scales) - set(self.groups))
        if stray:
            raise ValueError(f"fit stage {self.name!r}: lr_scales for groups the stage does not optimise: {stray}")
        if any(not scale > 0 for scale in self.lr_scales.values()):
            raise ValueError(f"fit stage {self.name!r}: lr_scales must be positive, got {dict(self.lr_scales)}")
        if not isinstance(self.loss, GANFitLoss):
            raise TypeError(f"fit stage {self.name!r}: loss must be a GANFitLoss, got {type(self.loss).__name__}")
        if not self.loss.active_terms:
            raise ValueError(f"fit stage {self.name!r}: every loss weight is 0")

    def learning_rate(self, group: str) -> float:
        """The learning rate of ``group``."""
        return self.lr * self.lr_scales.get(group, 1.0)


@dataclass(frozen=True)
class FitSettings:
    """The stages of an optimisation, run in order (a stage with 0 steps is skipped)."""

    stages: tuple[StageSettings, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"fit stages must have distinct names, got {names}")

    @classmethod
    def from_stages(cls, stages: Mapping[str, Mapping[str, Any]] | Sequence[StageSettings]) -> FitSettings:
        """From ``{name: {steps, lr, groups, loss, lr_scales}}`` (the form of ``conf/fit/*.yaml``, in order)
        or a sequence of :class:`StageSettings`."""
        if isinstance(stages, Mapping):
            return cls(tuple(StageSettings(name=str(name), **dict(values)) for name, values in stages.items()))
        return cls(tuple(stages))

    @property
    def total_steps(self) -> int:
        """Steps of all stages together."""
        return sum(stage.steps for stage in self.stages)

    def with_steps(self, steps: Mapping[str, int]) -> FitSettings:
        """A copy with the steps of the named stages replaced (e.g. for short runs in tests and benchmarks)."""
        unknown = sorted(set(steps) - {stage.name for stage in self.stages})
        if unknown:
            raise ValueError(f"no fit stages named {unknown}; stages are {[stage.name for stage in self.stages]}")
        return FitSettings(tuple(replace(s, steps=int(steps.get(s.name, s.steps))) for s in self.stages))
