"""The data commands are console scripts, and every data command shown in README.md and docs/ composes."""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
from data_commands import compose_command

from fastganfit.cli import prepare, synthetic, uv_shards

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"fastganfit-prepare": (prepare, "prepare"), "fastganfit-synthetic": (synthetic, "synthetic"),
            "fastganfit-uv-shards": (uv_shards, "uv_shards")}  # fmt: skip
SHOWN = re.compile(r"^(?:\.venv/bin/)?(fastganfit-(?:prepare|synthetic|uv-shards)) (.*)$", re.MULTILINE)


def shown_commands() -> list[tuple[str, str, list[str]]]:
    """``(file, command, overrides)`` of every data command line in README.md and docs/*.md."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for match in SHOWN.finditer(path.read_text()):
            found.append((path.name, match[1], shlex.split(match[2].split(" #")[0])))
    return found


def test_console_scripts_are_the_cli_mains() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()  # [project.scripts] lines: name = "module:function"
    scripts = dict(re.findall(r'^(fastganfit-[a-z-]+) = "([a-z_.]+:[a-z_]+)"$', pyproject, re.MULTILINE))
    for name, (module, _) in COMMANDS.items():
        module_name, function = scripts[name].split(":")
        assert importlib.import_module(module_name) is module and getattr(module, function) is module.main


def test_the_docs_show_every_data_command() -> None:
    assert {command for _, command, _ in shown_commands()} == set(COMMANDS)


@pytest.mark.parametrize(("page", "command", "overrides"), shown_commands())
def test_a_command_shown_in_the_docs_composes_with_valid_options(
    page: str, command: str, overrides: list[str]
) -> None:
    module, config_name = COMMANDS[command]
    module.options(compose_command(config_name, *overrides))  # raises OptionError on a missing or bad option
