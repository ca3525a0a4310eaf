"""Staged training runs: several configurations trained one after the other by one ``train.py`` command."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def stage_configs(cfg: DictConfig) -> list[tuple[str, DictConfig]]:
    """The runs of ``cfg``: ``[("", cfg)]`` without ``stages``; otherwise one ``(name, config)`` per stage in
    order, each ``cfg`` with the stage's overrides merged on top (OmegaConf.merge), ``stages`` cleared and
    ``run_dir`` set to ``<run_dir>/<name>``.

    Raises ``ValueError`` when ``stages`` is not a non-empty mapping of names to override mappings.
    """
    stages = cfg.get("stages")
    if stages is None:
        return [("", cfg)]
    if not isinstance(stages, DictConfig) or len(stages) == 0:
        raise ValueError(f"stages: expected a non-empty mapping stage name -> config overrides, got {stages!r}")
    base = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "stages"])
    base.stages = None
    run_dir = Path(str(cfg.run_dir))
    configs = []
    for name, overrides in stages.items():
        if not isinstance(overrides, DictConfig):
            raise ValueError(f"stages.{name}: expected a mapping of config overrides, got {overrides!r}")
        stage = OmegaConf.merge(base, overrides)
        stage.run_dir = str(run_dir / str(name))
        configs.append((str(name), stage))
    return configs


def resume_point(
    stages: list[tuple[str, DictConfig]], ckpt_path: str | None
) -> tuple[list[tuple[str, DictConfig]], Path | None]:
    """The stages still to run and the checkpoint the first of them chains from.

    Without ``ckpt_path``, or for an unstaged run, everything runs (the run resumes from ``ckpt_path`` itself).
    For a staged run, ``ckpt_path`` must lie in ``<run_dir>/<stage>/checkpoints/``: that stage resumes from it
    (the others get ``ckpt_path=null``), the stages before it are skipped and their final checkpoints reused.
    """
    if not ckpt_path or stages[0][0] == "":
        return stages, None
    checkpoint = Path(str(ckpt_path))
    names = [name for name, _ in stages]
    stage_name = checkpoint.parent.parent.name
    if checkpoint.parent.name != "checkpoints" or stage_name not in names:
        raise ValueError(
            f"ckpt_path={checkpoint}: a staged run resumes from a checkpoint in <run_dir>/<stage>/checkpoints/ "
            f"with <stage> one of {names}"
        )
    index = names.index(stage_name)
    remaining = stages[index:]
    for position, (_, stage) in enumerate(remaining):
        stage.ckpt_path = str(checkpoint) if position == 0 else None
    previous = checkpoint.parent.parent.parent / names[index - 1] / "checkpoints" / "last.ckpt" if index else None
    return remaining, previous


def chain_from(stage: DictConfig, previous: Path | None) -> None:
    """Start ``stage``'s model from ``previous`` (the last stage's final checkpoint) unless it names its own
    ``model.init_checkpoint``."""
    model = stage.model
    if previous is None:
        return
    if OmegaConf.is_missing(model, "init_checkpoint") or model.get("init_checkpoint", False) is None:
        model.init_checkpoint = str(previous)
