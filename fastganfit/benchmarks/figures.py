"""Evaluation pictures: cumulative error curves, per-vertex error maps and picture grids, as uint8 ``[H, W, 3]``
images."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from PIL import Image

ERROR_COLOURMAP = "viridis"
MISSING_COLOUR = (0.75, 0.75, 0.75)


def figure_to_image(figure: Figure, dpi: int = 100) -> np.ndarray:
    """Draw ``figure`` (a pyplot-free :class:`Figure`) and return it as a uint8 ``[H, W, 3]`` image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def cumulative_error_curves(errors: Mapping[str, Sequence[float]], title: str = "") -> np.ndarray:
    """Fraction of faces (%) whose error is at most x mm, one curve per method (``errors``: name -> errors)."""
    if not errors or any(len(values) == 0 for values in errors.values()):
        raise ValueError("cumulative_error_curves: every method needs at least one error value")
    figure = Figure(figsize=(5.5, 4.0))
    axes = figure.subplots()
    largest = max(float(np.max(values)) for values in errors.values())
    for name, values in errors.items():
        ordered = np.sort(np.asarray(values, dtype=float))
        fraction = np.arange(1, ordered.size + 1) / ordered.size * 100.0
        axes.step(np.concatenate([[0.0], ordered, [largest * 1.05]]),
                  np.concatenate([[0.0], fraction, [100.0]]), where="post",
                  label=f"{name} (mean {ordered.mean():.2f} mm)")
    axes.set_xlim(0.0, largest * 1.05)
    axes.set_ylim(0.0, 100.0)
    axes.set_xlabel("error (mm)")
    axes.set_ylabel("faces with error <= x (%)")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    if title:
        axes.set_title(title)
    return figure_to_image(figure)


def error_colours(errors: np.ndarray, max_error: float) -> np.ndarray:
    """Per-vertex colours ``[..., V, 3]`` in [0, 1] for ``errors [..., V]`` (mm) on a 0..``max_error`` scale;
    NaN (not measured) is grey."""
    if not max_error > 0:
        raise ValueError(f"max_error must be positive (mm), got {max_error}")
    colours = matplotlib.colormaps[ERROR_COLOURMAP](np.clip(np.nan_to_num(errors) / max_error, 0.0, 1.0))[..., :3]
    colours[np.isnan(errors)] = MISSING_COLOUR
    return colours


def draw_panels(
    figure: Figure, panels: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], column_titles: Sequence[str]
) -> np.ndarray:
    """Draw ``panels[row][column]`` (float ``[3, H, W]`` or ``[H, W, 3]`` images in [0, 1]) on a grid of ``figure``'s
    axes with row and column titles; returns the axes ``[rows, columns]``."""
    rows, columns = len(panels), len(column_titles)
    if rows != len(row_titles) or rows == 0 or any(len(row) != columns for row in panels):
        raise ValueError(f"expected {len(row_titles)} rows of {columns} panels")
    axes = figure.subplots(rows, columns, squeeze=False)
    for row, (row_panels, row_title) in enumerate(zip(panels, row_titles, strict=True)):
        for column, panel in enumerate(row_panels):
            image = np.asarray(panel)
            if image.ndim == 3 and image.shape[0] == 3:
                image = image.transpose(1, 2, 0)
            axis = axes[row][column]
            axis.imshow(np.clip(image, 0.0, 1.0))
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(column_titles[column], fontsize=9)
            if column == 0:
                axis.set_ylabel(row_title, fontsize=9)
    return axes


def image_grid(
    panels: Sequence[Sequence[np.ndarray]], row_titles: Sequence[str], column_titles: Sequence[str], title: str = ""
) -> np.ndarray:
    """A grid of pictures (``panels[row][column]``, as :func:`draw_panels`) with titles, as a uint8 image."""
    figure = Figure(figsize=(2.2 * len(column_titles) + 0.8, 2.2 * len(panels) + 0.4))
    draw_panels(figure, panels, row_titles, column_titles)
    if title:
        figure.suptitle(title)
    return figure_to_image(figure)


def error_map_grid(
    panels: Sequence[Sequence[np.ndarray]],
    row_titles: Sequence[str],
    column_titles: Sequence[str],
    max_error: float,
    title: str = "",
) -> np.ndarray:
    """A grid of rendered error maps (``panels[row][column]``: float ``[3, H, W]`` or ``[H, W, 3]`` images)
    with row and column titles and one colour bar from 0 to ``max_error`` mm."""
    rows, columns = len(panels), len(column_titles)
    if rows != len(row_titles) or rows == 0 or any(len(row) != columns for row in panels):
        raise ValueError(f"error_map_grid: expected {len(row_titles)} rows of {columns} panels")
    figure = Figure(figsize=(2.2 * columns + 0.8, 2.2 * rows + 0.4))
    axes = draw_panels(figure, panels, row_titles, column_titles)
    scale = ScalarMappable(cmap=ERROR_COLOURMAP, norm=Normalize(0.0, max_error))
    figure.colorbar(scale, ax=axes, fraction=0.025, pad=0.02, label="error (mm)")
    if title:
        figure.suptitle(title)
    return figure_to_image(figure)
