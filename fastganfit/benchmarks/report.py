"""Evaluation reports: a results table (console / Markdown) plus JSON details, written atomically."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fastganfit.io.atomic import atomic_write
from fastganfit.io.images import save_png


@dataclass
class EvaluationReport:
    """Results of one benchmark run.

    Attributes:
        benchmark: benchmark name, e.g. ``"MICC Florence"``.
        columns: table header.
        rows: table rows (numbers are formatted with two decimals).
        notes: lines printed under the table (protocol settings, missing files).
        details: JSON-serialisable per-item results.
        figures: pictures written next to the results as ``<name>.png`` and shown in results.md
            (uint8 ``[H, W, 3]`` each).
    """

    benchmark: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, np.ndarray] = field(default_factory=dict)

    def to_markdown(self) -> str:
        """The report as a Markdown section with a table."""

        def cell(value: Any) -> str:
            return f"{value:.2f}" if isinstance(value, float) else str(value)

        lines = [f"# {self.benchmark}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in self.rows]
        if self.notes:
            lines += ["", *(f"- {note}" for note in self.notes)]
        for name in self.figures:
            lines += ["", f"![{name}]({name}.png)"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-serialisable dictionary."""
        return {
            "benchmark": self.benchmark,
            "columns": self.columns,
            "rows": self.rows,
            "notes": self.notes,
            "details": self.details,
            "figures": [f"{name}.png" for name in self.figures],
        }


def write_report(report: EvaluationReport, output_dir: str | Path) -> tuple[Path, Path]:
    """Write ``results.md``, ``results.json`` and the report's figures (``<name>.png``) into ``output_dir``;
    returns the paths of the two results files. Figures go first, so the results never link a missing picture."""
    output_dir = Path(output_dir)
    for name, image in report.figures.items():
        save_png(image, output_dir / f"{name}.png")
    markdown, json_path = output_dir / "results.md", output_dir / "results.json"
    with atomic_write(markdown, "w") as handle:
        handle.write(report.to_markdown())
    with atomic_write(json_path, "w") as handle:
        handle.write(json.dumps(report.to_dict(), indent=2) + "\n")
    return markdown, json_path
