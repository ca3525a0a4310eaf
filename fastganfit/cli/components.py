"""The model's components as command-line config groups, and what they mean next to a checkpoint.

``facemodel=``, ``texture=``, ``identity=``, ``heatmaps=``, ``lighting=`` and ``renderer.`` overrides compose into
``model.*`` (conf/components/default.yaml, conf/model/fast_ganfit.yaml). A checkpoint rebuilds the components it
was trained with (its stored model config), so next to ``ckpt=``:

- choosing another option of a group (``identity=arcface_iresnet100``) is an error: the regressor's weights were
  sized for the trained components;
- a value (``identity.weights=PATH``, ``renderer.backend=torch``) is applied on top of the checkpoint's component,
  e.g. to point at a licensed file that moved since training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser

#: Component config group -> its path in the model config (conf/model/fast_ganfit.yaml).
COMPONENT_GROUPS: dict[str, str] = {
    "facemodel": "model",
    "texture": "texture",
    "identity": "identity",
    "heatmaps": "heatmaps",
    "renderer": "renderer",
    "lighting": "renderer.lighting",
}


def component_overrides(overrides: Sequence[str]) -> tuple[list[str], dict[str, Any]]:
    """Split command-line ``overrides`` touching the components into option choices (``identity=arcface_iresnet50``,
    also deletions) and values keyed by their path in the model config (``lighting.x=1`` -> ``renderer.lighting.x``).
    Other overrides are left out."""
    choices: list[str] = []
    values: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        group, _, key = override.key_or_group.partition(".")
        if group not in COMPONENT_GROUPS:
            continue
        if key and not override.is_delete():
            values[f"{COMPONENT_GROUPS[group]}.{key}"] = override.value()
        else:
            choices.append(override.input_line)
    return choices, values


def reject_component_choices(choices: Sequence[str], ckpt: str) -> None:
    """Raise ``ValueError`` naming ``choices`` (component options given next to ``ckpt``)."""
    if choices:
        raise ValueError(
            f"{' '.join(choices)}: ckpt={ckpt} rebuilds the components it was trained with, and its regressor is "
            "sized for them; drop the option (values such as identity.weights=PATH or renderer.backend=torch still "
            "apply to the checkpoint's components), train a checkpoint with it, or use fit.py ckpt=null (GANFit)"
        )
