"""Checks of the options a Hydra entry point was given, for the data commands (prepare, synthetic, uv_shards).

Hydra composes the configuration and rejects unknown keys itself; these say which of the known options is
missing (``???`` in the entry config) or has a bad value. :func:`run_command` turns an :class:`OptionError`
into a message naming the option and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from omegaconf import DictConfig, OmegaConf


class OptionError(ValueError):
    """A missing or bad command-line option; the message names it and says what is wrong."""


def require(cfg: DictConfig, forms: Mapping[str, str]) -> None:
    """Raise :class:`OptionError` naming every option of ``forms`` still missing, e.g. ``give output=DIR``."""
    missing = [f"{name}={form}" for name, form in forms.items() if OmegaConf.is_missing(cfg, name)]
    if missing:
        raise OptionError(f"give {' and '.join(missing)}")


def integer(cfg: DictConfig, name: str, minimum: int, optional: bool = False) -> int | None:
    """``cfg[name]`` as an integer of at least ``minimum`` (``None`` allowed when ``optional``)."""
    value = cfg[name]
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OptionError(f"{name} must be an integer of at least {minimum}, got {value!r}")
    return value


def boolean(cfg: DictConfig, name: str) -> bool:
    """``cfg[name]`` as a boolean (``true`` or ``false`` on the command line)."""
    value = cfg[name]
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be true or false, got {value!r}")
    return value


def choice(cfg: DictConfig, name: str, options: Sequence[str]) -> str:
    """``cfg[name]``, which must be one of ``options``."""
    value = cfg[name]
    if value not in options:
        raise OptionError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def text(cfg: DictConfig, name: str) -> str:
    """``cfg[name]`` as a non-empty string (Hydra reads ``prefix=7`` as a number: it is turned back into text)."""
    value = cfg[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value):
        raise OptionError(f"{name} must be a non-empty text, got {value!r}")
    return str(value)


def paths(cfg: DictConfig, name: str) -> str | list[str]:
    """``cfg[name]``: one path or glob pattern, or a list of them (``name=[a.jpg,b.jpg]``)."""
    value = cfg[name]
    if OmegaConf.is_list(value):
        return [str(item) for item in value]
    return text(cfg, name)


def shard_options(cfg: DictConfig) -> dict[str, Any]:
    """The options every shard-writing command has: ``max_per_shard``, ``prefix``, ``overwrite``, ``progress``."""
    return {
        "max_per_shard": integer(cfg, "max_per_shard", 1),
        "prefix": text(cfg, "prefix"),
        "overwrite": boolean(cfg, "overwrite"),
        "progress": boolean(cfg, "progress"),
    }


def run_command(command: str, run: Callable[[DictConfig], int], cfg: DictConfig) -> NoReturn:
    """Exit with ``run(cfg)``'s status, or with status 2 and ``command: error: ...`` on an :class:`OptionError`."""
    try:
        status: Any = run(cfg)
    except OptionError as error:
        print(f"{command}: error: {error} (see `{command} --help`)", file=sys.stderr)
        sys.exit(2)
    sys.exit(status)
