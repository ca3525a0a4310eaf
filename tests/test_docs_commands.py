"""Every train.py / fit.py / evaluate.py command shown in README.md and docs/*.md composes with Hydra's compose API,
with its placeholders (``...``, ``<run>``, ``$HOME/...``, data paths) replaced by tiny files in each asset's real
format (tests/asset_files.py). Components a command chooses are built from those files, and a command with a ckpt
must not choose another component option (fastganfit.cli.components)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from asset_files import AssetFiles
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from fastganfit.cli.components import COMPONENT_GROUPS, checkpoint_values, component_overrides

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: ``python train.py``, ``.venv/bin/python fit.py``, ``python -m fastganfit.cli.evaluate``, ``fastganfit-train``.
COMMAND = re.compile(
    r"(?:(?:\S*/)?python3?\s+(?:-m\s+fastganfit\.cli\.)?(?P<script>train|fit|evaluate)(?:\.py)?"
    r"|fastganfit-(?P<console>train|fit|evaluate))(?=\s|`|$)"
)
#: Keys whose value is an asset file: the AssetFiles name, or a function of the command's group choices.
FILE_KEYS = {
    "ckpt": "ckpt", "model.init_checkpoint": "ckpt", "ckpt_path": "ckpt", "image": "image",
    "facemodel.landmark_indices": "landmarks", "facemodel.uv_mesh": "uv_mesh", "heatmaps.weights": "fan",
    "landmarks.weights": "fan", "model.regressor.heatmap_weights": "timm",
}  # fmt: skip
CHOSEN_FILE_KEYS = {"facemodel.path": "facemodel", "texture.path": "texture", "identity.weights": "identity"}


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """``(where, script, arguments)`` of every documented command: code-block lines (continuations joined, shell
    comments dropped) and inline code spans."""
    found = []
    for path in DOCS:
        lines, start, pending = [], 1, ""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            start = start if pending else number
            pending += line[:-1] + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                lines.append((start, pending))
                pending = ""
        for number, line in lines:
            for match in COMMAND.finditer(line):
                rest = line[match.end() :]
                inline = line[: match.start()].count("`") % 2 == 1
                rest = rest.split("`")[0] if inline else re.split(r"\s#", rest)[0]
                where = f"{path.relative_to(REPO)}:{number}"
                found.append((where, match["script"] or match["console"], shlex.split(rest)))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands_of_every_entry_point() -> None:
    scripts = {script for _, script, _ in COMMANDS}
    assert scripts == {"train", "fit", "evaluate"} and len(COMMANDS) > 30


def concrete(arguments: list[str], assets: AssetFiles, scratch: Path) -> list[str]:
    """``arguments`` with placeholders and asset paths replaced by tiny files (other placeholders by ``scratch``).
    A multirun command (``-m``) is composed at its first sweep point (``a,b`` -> ``a``)."""
    multirun = "-m" in arguments or "--multirun" in arguments
    pairs = [argument.split("=", 1) for argument in arguments if "=" in argument and not argument.startswith("-")]
    if multirun:
        pairs = [[key, value.split(",")[0]] for key, value in pairs]
    choices = {key.lstrip("+"): value for key, value in pairs if key.lstrip("+") in COMPONENT_GROUPS}
    result = []
    for key, value in pairs:
        if key in FILE_KEYS:
            value = str(assets[FILE_KEYS[key]])
        elif key.removeprefix("paths.") in AssetFiles.PATHS:
            value = str(assets[AssetFiles.PATHS[key.removeprefix("paths.")]])
        elif key in CHOSEN_FILE_KEYS:
            value = str(assets[choices.get(CHOSEN_FILE_KEYS[key], "")])
        elif "..." in value or "<" in value or value.startswith("$"):
            value = str(scratch)
        result.append(f"{key}={value}")
    return result


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> AssetFiles:
    return AssetFiles(tmp_path_factory.mktemp("assets"))


@pytest.fixture(autouse=True)
def local_paths(assets: AssetFiles, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's local paths file the docs tell them to create (docs/assets.md), naming the tiny files."""
    config_dir = tmp_path_factory.getbasetemp() / "user_config"
    assets.write_local_paths(config_dir)
    monkeypatch.setenv("FASTGANFIT_CONFIG_DIR", str(config_dir))


#: A component's file keys: with the local paths file, a command without a checkpoint never needs them.
COMPONENT_FILE_KEYS = {f"{group}.{key}" for group in COMPONENT_GROUPS
                       for key in ("path", "weights", "landmark_indices", "uv_mesh")} | {"landmarks.weights"}


@pytest.mark.parametrize(("where", "script", "arguments"), COMMANDS, ids=[where for where, _, _ in COMMANDS])
def test_documented_command_names_components_not_files(where: str, script: str, arguments: list[str]) -> None:
    """With the local paths file, a licensed component is one override (``facemodel=bfm2009``); only next to a
    checkpoint may a command give a component's file (the file moved since training)."""
    keys = {argument.split("=", 1)[0].lstrip("+") for argument in arguments if "=" in argument}
    if any(key in keys for key in ("ckpt", "model.init_checkpoint", "ckpt_path")):
        return
    assert not keys & COMPONENT_FILE_KEYS, f"{where}: give {keys & COMPONENT_FILE_KEYS} in the local paths file"


@pytest.mark.parametrize(("where", "script", "arguments"), COMMANDS, ids=[where for where, _, _ in COMMANDS])
def test_documented_command_composes(where: str, script: str, arguments: list[str], assets: AssetFiles,
                                     tmp_path: Path) -> None:  # fmt: skip
    overrides = concrete(arguments, assets, tmp_path)
    with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
        cfg = compose(script, overrides=overrides)
    choices, _ = component_overrides(overrides)
    if script in ("fit", "evaluate") and cfg.get("ckpt"):  # as with a checkpoint trained with these components
        components = [o for o in overrides if o.split("=")[0].split(".")[0].lstrip("+") in COMPONENT_GROUPS]
        with initialize_config_dir(str(REPO / "fastganfit" / "conf"), version_base="1.3"):
            trained = compose("train", overrides=["experiment=fast_align", *components])
        checkpoint_values(cfg, overrides, OmegaConf.to_container(trained.model, resolve=True), cfg.ckpt)
    for choice in choices:  # a licensed component the command picks builds from its (tiny) files
        group = choice.split("=")[0].lstrip("+")
        assets.write_referenced(cfg[group])
        component = instantiate(cfg[group], _convert_="all")
        assert component is not None, f"{where}: {choice}"
