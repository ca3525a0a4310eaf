"""The model's components as command-line config groups, and what they mean next to a checkpoint.

``facemodel=``, ``texture=``, ``identity=``, ``heatmaps=``, ``lighting=`` and ``renderer.`` overrides compose into
``model.*`` (conf/components/default.yaml, conf/model/fast_ganfit.yaml). A checkpoint rebuilds the components it
was trained with (its stored model config), so next to ``ckpt=``:

- a value (``identity.weights=PATH``, ``renderer.backend=torch``) is applied on top of the checkpoint's component,
  e.g. to point at a licensed file that moved since training. A key the default option lacks needs the trained
  option named too: ``identity=arcface_iresnet50 identity.weights=PATH``;
- naming an option is allowed when it describes the trained component (same ``_target_`` and settings, asset file
  keys aside); another option (``identity=dlib_resnet`` for an ArcFace checkpoint) is an error: the regressor's
  weights were sized for the trained components.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, ListConfig, OmegaConf

from fastganfit.regression.component_values import (
    COMPONENT_PATHS,
    FILE_KEYS,
    ComponentOption,
    check_component_options,
)

#: Component config group -> its path in the model config (conf/model/fast_ganfit.yaml).
COMPONENT_GROUPS: dict[str, str] = COMPONENT_PATHS


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


def checkpoint_request(cfg: DictConfig, overrides: Sequence[str]) -> tuple[dict[str, Any], list[ComponentOption]]:
    """The component values of ``overrides`` (dotted model config keys) and the component options they name (as
    ``cfg`` composes them, values left out), for checking against a checkpoint's components when it is read
    (:func:`~fastganfit.regression.component_values.check_component_options`). ``ValueError`` for a deletion
    (``~identity``): a checkpoint's components cannot be removed."""
    choices, values = component_overrides(overrides)
    options = []
    for choice in choices:
        group = choice.split("=", 1)[0].lstrip("+~")
        if choice.startswith("~"):
            raise ValueError(f"{choice}: a checkpoint rebuilds its {COMPONENT_GROUPS[group]!r} component; it cannot "
                             "be removed")
        chosen = cfg[group]
        given = {}
        for key in chosen:  # key by key: an option's file keys may refer to paths not set (conf/paths)
            if key in FILE_KEYS or OmegaConf.is_missing(chosen, key):
                continue
            value = chosen[key]
            nested = isinstance(value, DictConfig | ListConfig)
            given[key] = OmegaConf.to_container(value, resolve=True) if nested else value
        options.append(ComponentOption(choice, group, given))
    return values, options


def checkpoint_values(
    cfg: DictConfig, overrides: Sequence[str], trained: Mapping[str, Any], ckpt: str
) -> dict[str, Any]:
    """The component values of ``overrides`` to set on the ``trained`` model config of ``ckpt`` (dotted model config
    keys). ``ValueError`` for a component option in ``overrides`` that differs from the trained component
    (:func:`checkpoint_request`, :func:`~fastganfit.regression.component_values.check_component_options`)."""
    values, options = checkpoint_request(cfg, overrides)
    check_component_options(trained, options, values, ckpt)
    return values
