"""Lists of what exists, in the docs and the code, checked against the folders they describe."""

from __future__ import annotations

import re
from pathlib import Path

import fastganfit.facemodel
from fastganfit.cli.train import EXPERIMENTS

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "fastganfit" / "conf"


def readme_row(path: str) -> str:
    """The README "What is where" row of ``path``."""
    rows = [line for line in (REPO / "README.md").read_text().splitlines() if line.startswith(f"| `{path}`")]
    assert len(rows) == 1, path
    return rows[0]


def test_train_lists_every_experiment() -> None:
    assert EXPERIMENTS.split(", ") == sorted(path.stem for path in (CONF / "experiment").glob("*.yaml"))
    assert "hybrid" in EXPERIMENTS


def test_readme_names_every_script_cli_and_config_group() -> None:
    scripts = readme_row("scripts/")
    missing = [path.name for path in (REPO / "scripts").iterdir() if path.is_file() and f"`{path.name}`" not in scripts]
    assert not missing, f"README's scripts/ row lacks {missing}"
    cli = readme_row("fastganfit/cli/")
    commands = [path.stem for path in (REPO / "fastganfit" / "cli").glob("*.py") if path.stem not in (
        "__init__", "components", "options", "reconstructor", "exit_status")]  # fmt: skip  (helpers, not commands)
    assert [name for name in commands if f"`{name}`" not in cli] == []
    conf = readme_row("fastganfit/conf/")
    groups = [path.name for path in CONF.iterdir() if path.is_dir() and path.name != "local"]
    assert [group for group in groups if not re.search(rf"`{group}/", conf)] == []


def test_facemodel_docstring_names_its_modules() -> None:
    doc = fastganfit.facemodel.__doc__ or ""
    modules = [path.stem for path in Path(fastganfit.facemodel.__file__).parent.glob("*.py") if path.stem != "__init__"]
    assert [name for name in modules if f"``{name}``" not in doc] == []
    assert "camera" not in doc.split("Cameras")[0], doc


#: A measured figure in a comment: a number with a unit of time, error or speed.
MEASURED = re.compile(r"\d(?:\.\d+)? ?(?:%|mm\b|ms\b|s per|s on|steps/s|minutes?\b|min\b|seconds?\b)")


def test_config_comments_hold_no_measured_numbers() -> None:
    """Measured numbers go stale in YAML comments: they live in BENCHMARKS.md / docs, which the comments point to."""
    found = []
    for path in sorted(CONF.rglob("*.yaml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            comment = line.partition("#")[2]
            if MEASURED.search(comment):
                found.append(f"{path.relative_to(REPO)}:{number}: {comment.strip()}")
    assert not found, "measured numbers in config comments (move them to BENCHMARKS.md):\n" + "\n".join(found)
