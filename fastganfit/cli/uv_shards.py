"""``fastganfit-uv-shards input=DIR output=DIR [resolution=N] ...``: a folder of UV textures (+ masks) -> UV shards.

Also ``python -m fastganfit.cli.uv_shards``. The options and their defaults are ``conf/uv_shards.yaml``; the work is
:func:`fastganfit.data.uv_shards.convert_folder` (see docs/textures.md). Exit status: 0 on success, 1 when the
input holds no usable texture or the output cannot be written, 2 on a missing or bad option.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.cli.options import OptionError, integer, require, run_command, shard_options, text
from fastganfit.data.uv_shards import ConvertOptions, NoSamplesError, convert_folder

COMMAND = "fastganfit-uv-shards"


def options(cfg: DictConfig) -> ConvertOptions:
    """``cfg`` (``conf/uv_shards.yaml``) -> :class:`ConvertOptions`; raises :class:`OptionError`."""
    require(cfg, {"input": "DIR", "output": "DIR"})
    if not isinstance(cfg.mask_suffix, str):  # may be empty: no masks
        raise OptionError(f"mask_suffix must be a text, got {cfg.mask_suffix!r}")
    return ConvertOptions(
        input=Path(text(cfg, "input")),
        output=Path(text(cfg, "output")),
        mask_suffix=cfg.mask_suffix,
        resolution=integer(cfg, "resolution", 1, optional=True),
        **shard_options(cfg),
    )


def run(cfg: DictConfig) -> int:
    """Convert the folder ``cfg`` names and print a summary; returns the exit status."""
    arguments = options(cfg)
    try:
        report = convert_folder(arguments)
    except FileExistsError as error:
        print(f"{COMMAND}: error: {error} (overwrite=true replaces them)", file=sys.stderr)
        return 1
    except (NotADirectoryError, NoSamplesError) as error:
        print(f"{COMMAND}: error: {error}", file=sys.stderr)
        return 1
    manifest = report.manifest
    print(
        f"wrote {manifest['samples']} UV textures ({manifest['masked_samples']} with masks, "
        f"{manifest['resolution']}x{manifest['resolution']}) to {len(report.shards)} shards in {arguments.output}; "
        f"skipped {len(report.skipped)} files"
    )
    return 0


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="uv_shards", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_command(COMMAND, run, cfg)


if __name__ == "__main__":
    main()
