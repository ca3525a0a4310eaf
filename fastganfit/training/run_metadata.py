"""What a run records about itself: the resolved config (flattened, so a dashboard can filter and group by any
key), the git commit, package versions, the machine and its GPU."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "lightning", "pytorch3d", "hydra-core", "omegaconf", "wandb", "numpy", "webdataset")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": 1, "c": [1, 2]}`` (lists of scalars stay lists; lists
    holding mappings are numbered: ``a.0.b``)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}.") if value else {name: None})
        elif (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and any(isinstance(item, Mapping) for item in value)
        ):
            flat.update(flatten({str(index): item for index, item in enumerate(value)}, f"{name}."))
        else:
            flat[name] = value
    return flat


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPOSITORY, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """``git.commit`` (``None`` outside a git checkout) and ``git.dirty`` (uncommitted changes to tracked files)."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git.commit": commit, "git.dirty": None if status is None else bool(status)}


def package_versions() -> dict[str, str | None]:
    """``versions.<package>`` of the packages a run depends on (``None`` when one is not installed)."""
    versions: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            versions[f"versions.{package}"] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[f"versions.{package}"] = None
    versions["versions.python"] = platform.python_version()
    return versions


def machine() -> dict[str, Any]:
    """``machine.*``: host, platform, CPU count and the GPUs (names, count, CUDA version)."""
    gpus = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return {
        "machine.host": platform.node(),
        "machine.platform": platform.platform(),
        "machine.cpus": len(os.sched_getaffinity(0)),
        "machine.gpu": ", ".join(gpus) if gpus else None,
        "machine.gpu_count": len(gpus),
        "machine.cuda": torch.version.cuda,
    }


def command_line() -> dict[str, Any]:
    """``command.*`` of a Hydra job: ``experiment`` (the chosen experiment config, ``None`` for none),
    ``overrides`` (the command line's, as given) and ``job`` (the entry point's name); ``{}`` outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    return {
        "command.experiment": hydra.runtime.choices.get("experiment"),
        "command.overrides": list(hydra.overrides.task),
        "command.job": hydra.job.name,
    }


def run_metadata(config: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened ``config`` (a resolved plain mapping) plus :func:`command_line`, :func:`git_state`,
    :func:`package_versions` and :func:`machine`."""
    return {**flatten(config), **command_line(), **git_state(), **package_versions(), **machine()}
