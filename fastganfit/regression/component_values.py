"""Component values next to a checkpoint: what may change in the components a checkpoint rebuilds.

A checkpoint rebuilds the components it was trained with (its stored model config). On top of them:

- a value (``identity.weights``, ``renderer.backend``) is set on the checkpoint's component, e.g. to point at a
  licensed file that moved since training;
- an option (a whole component config, as ``identity=arcface_iresnet50`` composes it) is allowed when it describes
  the trained component (same ``_target_`` and settings, asset file keys and keys given as values aside); another
  option is an error: the regressor's weights were sized for the trained components.

``fit.py``, ``evaluate.py``, the photos -> UV-shards command and :class:`fastganfit.FaceReconstructor` share these
rules (:func:`check_component_options`, applied when the checkpoint is read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Component (config group) -> its path in the model config (conf/model/fast_ganfit.yaml).
COMPONENT_PATHS: dict[str, str] = {
    "facemodel": "model",
    "texture": "texture",
    "identity": "identity",
    "heatmaps": "heatmaps",
    "renderer": "renderer",
    "lighting": "renderer.lighting",
}

#: Keys naming an asset file or a cache: they may differ from the checkpoint's (the file moved).
FILE_KEYS = frozenset({"path", "weights", "model_path", "cache_dir", "landmark_indices", "uv_mesh"})


@dataclass(frozen=True)
class ComponentOption:
    """A component option asked for next to a checkpoint: the ``label`` the user gave (``identity=dlib_resnet``),
    its ``component`` (a key of :data:`COMPONENT_PATHS`) and its ``config`` (plain values; keys left out are not
    compared)."""

    label: str
    component: str
    config: Mapping[str, Any]


class ComponentRequest:
    """What a command line asks of a checkpoint's components: ``values`` (dotted model config keys) and ``options``
    (checked against the trained components). A plain class, not a dataclass, so that Hydra's ``instantiate`` hands
    it to a target unchanged (a dataclass becomes a config, whose options' ``_target_`` keys would be built)."""

    def __init__(self, values: Mapping[str, Any] | None = None, options: Sequence[ComponentOption] = ()) -> None:
        self.values = dict(values or {})
        self.options = tuple(options)

    def __repr__(self) -> str:
        return f"ComponentRequest(values={self.values!r}, options={list(self.options)!r})"


def selected(config: Mapping[str, Any], path: str) -> Any:
    """The entry at dotted ``path`` of nested mappings ``config`` (``None`` when absent)."""
    entry: Any = config
    for key in path.split("."):
        if not isinstance(entry, Mapping):
            return None
        entry = entry.get(key)
    return entry


def check_component_options(
    trained: Mapping[str, Any], options: Sequence[ComponentOption], values: Mapping[str, Any], ckpt: str
) -> None:
    """``ValueError`` for an option of ``options`` that differs from the component of the ``trained`` model config of
    ``ckpt``: its ``_target_`` or a setting (:data:`FILE_KEYS`, keys set by ``values`` (dotted model config keys) and
    ``None`` or nested values aside), or names a component the checkpoint does not have."""
    for option in options:
        path = COMPONENT_PATHS[option.component]
        component = selected(trained, path)
        if not isinstance(component, Mapping):
            raise ValueError(f"{option.label}: ckpt={ckpt} has no {path!r} component to match it")
        for key, value in option.config.items():
            if key in FILE_KEYS or f"{path}.{key}" in values or value is None or isinstance(value, Mapping):
                continue
            theirs = component.get(key)
            if value != theirs:
                raise ValueError(
                    f"{option.label}: ckpt={ckpt} rebuilds the components it was trained with, and its regressor is "
                    f"sized for them: its {option.component} has {key}={theirs!r}, the option {value!r}. Drop the "
                    "option (values such as identity.weights=PATH still apply to the checkpoint's components), train "
                    "a checkpoint with it, or use fit.py ckpt=null (GANFit)"
                )
