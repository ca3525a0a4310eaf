"""Draw what a W&B run holds into one picture (docs/images/tracking_run.png), from an offline run folder:

    .venv/bin/python scripts/tracking_figure.py RUN_FOLDER [--output docs/images/tracking_run.png]

RUN_FOLDER is ``<run_dir>/wandb/offline-run-*`` (or any folder above one: its first run is drawn). The run is read
with W&B's own protobuf records (fastganfit.training.wandb_offline): config keys, the training and validation
curves, the first and last fixed validation panels with their face ids, the per-face table and the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from PIL import Image

from fastganfit.training.wandb_offline import OfflineRun, find_runs, read_run

CONFIG_KEYS = ("model.phase", "loss.landmark", "loss.identity", "loss.shape", "data.batch_size", "seed", "git.commit")


def panel_rows(run: OfflineRun, entry: dict) -> list[tuple[str, Image.Image]]:
    """The (face id, row image) pairs of one logged ``val/panel``."""
    names = entry["filenames"]  # relative to the run's files/ folder
    return [(caption, Image.open(run.files / name)) for caption, name in zip(entry["captions"], names, strict=True)]


def draw(run: OfflineRun, output: Path) -> None:
    """Draw ``run`` into ``output`` (PNG)."""
    panels = [row for row in run.history if "val/panel" in row]
    if not panels:
        raise ValueError(f"{run.folder}: the run has no val/panel images (was it a train.py run?)")
    first, last = panels[0], panels[-1]
    figure = plt.figure(figsize=(13, 8.5), dpi=100)
    grid = figure.add_gridspec(3, 3, height_ratios=[0.5, 2.2, 1.2], width_ratios=[1.5, 1.5, 1.2])
    header = figure.add_subplot(grid[0, :])
    header.axis("off")
    config = "   ".join(f"{key}={run.config.get(key)!s:.12}" for key in CONFIG_KEYS)
    best = run.summary.get("best/val/vertex_error_mm")
    header.text(0, 0.75, f"W&B run {run.name!r}  group {run.group!r}  job type {run.job_type!r}", fontsize=13,
                weight="bold")  # fmt: skip
    header.text(0, 0.35, f"config ({len(run.config)} keys): {config}", fontsize=9, family="monospace")
    if best is not None:
        header.text(0, 0.0, f"summary: best/val/vertex_error_mm = {best:.2f} mm at step {run.summary['best/step']}",
                    fontsize=9, family="monospace")  # fmt: skip
    for column, entry in enumerate((first, last)):
        axis = figure.add_subplot(grid[1, column])
        rows = panel_rows(run, entry["val/panel"])
        width, height = rows[0][1].size
        sheet = Image.new("RGB", (width, height * len(rows)), "white")
        for index, (_, image) in enumerate(rows):
            sheet.paste(image.convert("RGB"), (0, index * height))
        axis.imshow(sheet)
        axis.set_yticks([height * (index + 0.5) for index in range(len(rows))], [caption for caption, _ in rows],
                        fontsize=7)  # fmt: skip
        axis.set_xticks([width * (index + 0.5) / 5 for index in range(5)],
                        ["input", "render", "overlay", "UV texture", "side"], fontsize=7)  # fmt: skip
        axis.set_title(f"val/panel at step {entry['trainer/global_step']}", fontsize=10)
    curves = figure.add_subplot(grid[1, 2])
    for key in ("train/total", "train/landmark"):
        steps = [row["trainer/global_step"] for row in run.history if key in row]
        curves.plot(steps, run.values(key), label=key)
    validation = [row["trainer/global_step"] for row in panels]
    errors = run.values("val/vertex_error_mm")
    if len(errors) == len(validation):
        twin = curves.twinx()
        twin.plot(validation, errors, "o-", color="tab:red", label="val/vertex_error_mm")
        twin.set_ylabel("val/vertex_error_mm", fontsize=8, color="tab:red")
    curves.set_xlabel("trainer/global_step", fontsize=8)
    curves.legend(fontsize=7, loc="upper right")
    curves.set_title("scalars", fontsize=10)
    table_axis = figure.add_subplot(grid[2, :2])
    table_axis.axis("off")
    table = json.loads((run.files / last["val/faces"]["path"]).read_text())
    columns = [name for name in table["columns"] if name != "panel"]
    cells = [[f"{value:.2f}" if isinstance(value, float) else str(value) for value in row[: len(columns)]]
             for row in table["data"]]  # fmt: skip
    shown = table_axis.table(cellText=cells, colLabels=columns, loc="center", cellLoc="center")
    shown.set_fontsize(8)
    table_axis.set_title(f"val/faces table at step {last['trainer/global_step']} (+ a thumbnail column)", fontsize=10)
    media = figure.add_subplot(grid[2, 2])
    media.axis("off")
    meshes = sum(1 for row in run.history if "val/meshes" in row)
    artifacts = sorted({artifact["name"] for artifact in run.artifacts if artifact["type"] == "model"})
    lines = [f"val/meshes: 3D objects at {meshes} validations", f"model artifacts: {', '.join(artifacts) or 'none'}",
             f"history rows: {len(run.history)}"]  # fmt: skip
    media.text(0, 0.5, "\n".join(lines), fontsize=9, family="monospace", va="center")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an offline-run-* folder, or a folder above one")
    parser.add_argument("--output", type=Path, default=Path("docs/images/tracking_run.png"))
    args = parser.parse_args(argv)
    try:
        run = read_run(args.run) if args.run.name.startswith("offline-run-") else find_runs(args.run)[0]
        draw(run, args.output)
    except (ValueError, IndexError, FileNotFoundError) as error:
        print(f"tracking_figure.py: error: {error or f'no offline run under {args.run}'}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
