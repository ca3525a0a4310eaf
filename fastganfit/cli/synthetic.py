"""``fastganfit-synthetic output=DIR n=N seed=S [preview=K] ...``: rendered random faces with ground truth -> face
shards.

Also ``python -m fastganfit.cli.synthetic``. The options and their defaults are ``conf/synthetic.yaml``; the work is
:func:`fastganfit.data.synthetic.generate_synthetic_faces` (see docs/data.md); ``preview=K`` also saves the first K
faces with their landmarks as ``preview.png`` in the output folder. Exit status: 0 on success, 1 when the output
cannot be written (e.g. it already holds shards), 2 on a missing or bad option.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from fastganfit.cli import CONFIG_DIR
from fastganfit.cli.exit_status import exit_status
from fastganfit.cli.options import integer, require, run_command, shard_options, text
from fastganfit.data.face_shards import save_face_preview
from fastganfit.data.synthetic import generate_synthetic_faces

COMMAND = "fastganfit-synthetic"
PREVIEW_NAME = "preview.png"


def options(cfg: DictConfig) -> dict[str, Any]:
    """``cfg`` (``conf/synthetic.yaml``) -> keyword arguments of :func:`generate_synthetic_faces`."""
    require(cfg, {"output": "DIR", "n": "N", "seed": "S"})
    return {
        "output_dir": Path(text(cfg, "output")),
        "n": integer(cfg, "n", 1),
        "seed": integer(cfg, "seed", 0),
        "crop_size": integer(cfg, "crop_size", 16),
        "batch_size": integer(cfg, "batch_size", 1),
        **shard_options(cfg),
    }


def run(cfg: DictConfig) -> int:
    """Render the synthetic set ``cfg`` asks for (and its preview) and print a summary; returns the exit status."""
    arguments = options(cfg)
    preview = integer(cfg, "preview", 0)
    try:
        shards = generate_synthetic_faces(**arguments)
    except FileExistsError as error:
        print(f"{COMMAND}: error: {error} (overwrite=true replaces them)", file=sys.stderr)
        return 1
    except (NotADirectoryError, ValueError) as error:
        print(f"{COMMAND}: error: {error}", file=sys.stderr)
        return 1
    output = arguments["output_dir"]
    print(f"wrote {arguments['n']} synthetic faces (seed {arguments['seed']}) to {len(shards)} shards in {output}")
    if preview:
        print(f"wrote {save_face_preview(output, output / PREVIEW_NAME, count=preview)}")
    return 0


@exit_status
@hydra.main(config_path=str(CONFIG_DIR), config_name="synthetic", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_command(COMMAND, run, cfg)


if __name__ == "__main__":
    main()
