"""``fastganfit-prepare input=DIR|GLOB output=DIR [workers=N] ...``: photos -> aligned face crops in face shards.

Also ``python -m fastganfit.cli.prepare``. The options and their defaults are ``conf/prepare.yaml``; the work is
:func:`fastganfit.data.prepare.prepare_images` (see docs/data.md). Exit status: 0 when at least one face was
written, 1 when the input is missing or empty or nothing could be written, 2 on a missing or bad option.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.cli.options import (
    OptionError,
    choice,
    integer,
    paths,
    require,
    run_command,
    shard_options,
    text,
)
from fastganfit.data.prepare import prepare_images

COMMAND = "fastganfit-prepare"


def landmarker_options(cfg: DictConfig) -> dict[str, Any]:
    """The landmarker's keyword arguments given on the command line (``detector``, ``upsample``, ``fan_weights``;
    for ``landmarker=fan`` without ``fan_weights``, ``paths.fan`` when set)."""
    options: dict[str, Any] = {"detector": choice(cfg, "detector", ("hog", "cnn"))}
    if cfg.upsample is not None:
        options["upsample"] = integer(cfg, "upsample", 0)
    if cfg.fan_weights is not None:
        if cfg.landmarker != "fan":
            raise OptionError("fan_weights only applies with landmarker=fan")
        options["weights"] = text(cfg, "fan_weights")
    elif cfg.landmarker == "fan" and cfg.paths.fan is not None:
        options["weights"] = str(cfg.paths.fan)
    return options


def options(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` (``conf/prepare.yaml``) -> keyword arguments of :func:`prepare_images`; raises :class:`OptionError`."""
    require(cfg, {"input": "DIR|GLOB", "output": "DIR"})
    return {
        "inputs": paths(cfg, "input"),
        "output_dir": text(cfg, "output"),
        "crop_size": integer(cfg, "crop_size", 16),
        "workers": integer(cfg, "workers", 1, optional=True),
        "landmarker": choice(cfg, "landmarker", ("dlib", "fan")),
        "landmarker_options": landmarker_options(cfg),
        "min_face": integer(cfg, "min_face", 0),
        **shard_options(cfg),
    }


def run(cfg: DictConfig) -> int:
    """Prepare the face shards ``cfg`` asks for and print a summary; returns the exit status."""
    arguments = options(cfg)
    try:
        report = prepare_images(**arguments)
    except (FileNotFoundError, FileExistsError, NotADirectoryError, ValueError) as error:
        print(f"{COMMAND}: error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {report.written} face crops to {len(report.shards)} shards in {report.output_dir}; skipped "
        f"{len(report.skipped)} of {report.inputs} inputs (reasons in {report.manifest}); "
        f"{report.images_per_second:.2f} images/s"
    )
    if report.written == 0:
        print(f"{COMMAND}: error: no face could be written from {arguments['inputs']}", file=sys.stderr)
        return 1
    return 0


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="prepare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_command(COMMAND, run, cfg)


if __name__ == "__main__":
    main()
