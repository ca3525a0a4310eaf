#!/usr/bin/env bash
# The package as a user installs it: build the wheel, check that it holds every config, asset and data file of the
# package, install it with the pinned dependencies (requirements.txt) into a fresh virtual environment, and from a
# folder outside the clone run the console scripts: `fastganfit-fit --help`, compose
# `fastganfit-train experiment=fast_align --cfg job`, and a tiny real reconstruction (GANFit from the mean face on
# skimage's astronaut photo, 2 steps per stage) whose output files are checked. Any failure exits non-zero with a
# message.
#
# Usage: .ci/wheel_check.sh  (or `make wheel-check`). PYTHON picks the interpreter the venv is made from (default
# python3); WHEEL_CHECK_DIR keeps the work folder (wheel, venv, outputs) there instead of a deleted temporary one;
# with it, WHEEL_CHECK_REUSE_VENV=1 reuses its venv (dependencies installed by an earlier run; only the wheel is new).
set -euo pipefail
CLONE="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
unset PYTHONPATH   # the installed package must be the one imported, never the clone's

fail() { echo "wheel-check: FAILED: $*" >&2; exit 1; }
step() { echo "wheel-check: $* ($(date +%H:%M:%S))"; }

if [[ -n "${WHEEL_CHECK_DIR:-}" ]]; then
    WORK="$WHEEL_CHECK_DIR"
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi
case "$WORK/" in "$CLONE"/*) fail "the work folder $WORK lies inside the clone $CLONE: choose one outside" ;; esac
start=$SECONDS

step "building the wheel of $CLONE"
rm -rf "$WORK/dist"
"$PYTHON" -m pip wheel --no-deps --quiet "$CLONE" -w "$WORK/dist" || fail "pip wheel could not build the package"
WHEEL="$(ls "$WORK"/dist/fastganfit-*.whl)" || fail "no fastganfit wheel in $WORK/dist"

step "checking that $WHEEL holds every package data file"
missing="$(cd "$CLONE" && git ls-files fastganfit | grep -v '\.py$' | while read -r f; do
    "$PYTHON" -c "import sys, zipfile; sys.exit(sys.argv[2] not in zipfile.ZipFile(sys.argv[1]).namelist())" \
        "$WHEEL" "$f" || echo "$f"
done)"
[[ -z "$missing" ]] || fail "the wheel lacks these tracked package files (pyproject.toml [tool.setuptools.package-data]):
$missing"
extra="$("$PYTHON" -c "import sys, zipfile; print('\n'.join(n for n in zipfile.ZipFile(sys.argv[1]).namelist()
                                                     if n.startswith('fastganfit/conf/local/')))" "$WHEEL")"
[[ -z "$extra" ]] || fail "the wheel holds a clone's local asset paths (git-ignored fastganfit/conf/local/): $extra"

VPY="$WORK/venv/bin/python"
if [[ "${WHEEL_CHECK_REUSE_VENV:-0}" == 1 && -x "$VPY" ]]; then
    step "reusing the virtual environment $WORK/venv (WHEEL_CHECK_REUSE_VENV=1): only the wheel is reinstalled"
else
    step "installing requirements.txt into a fresh virtual environment"
    rm -rf "$WORK/venv"
    "$PYTHON" -m venv "$WORK/venv"
    "$VPY" -m pip install --quiet -r "$CLONE/requirements.txt" || fail "pip could not install requirements.txt"
fi
"$VPY" -m pip install --quiet --no-deps --force-reinstall "$WHEEL" || fail "pip could not install $WHEEL"
step "installed in $((SECONDS - start)) s"

RUN="$WORK/run"
rm -rf "$RUN"
mkdir -p "$RUN"
cd "$RUN"
installed="$("$VPY" -c 'import fastganfit; print(fastganfit.__file__)')"
case "$installed" in "$WORK/venv/"*) ;; *) fail "fastganfit was imported from $installed, not from the fresh venv" ;; esac

step "fastganfit-fit --help"
"$WORK/venv/bin/fastganfit-fit" --help > help.txt || fail "fastganfit-fit --help exited non-zero"
grep -q "fit is powered by Hydra" help.txt || fail "fastganfit-fit --help printed no Hydra help (help.txt: $(head -c 400 help.txt))"

step "fastganfit-train experiment=fast_align --cfg job"
"$WORK/venv/bin/fastganfit-train" experiment=fast_align --cfg job > train_job.yaml \
    || fail "fastganfit-train experiment=fast_align --cfg job exited non-zero"
"$VPY" - train_job.yaml <<'EOF' || fail "the composed fast_align training config is not what conf/experiment/fast_align.yaml makes"
import sys

from omegaconf import OmegaConf

cfg = OmegaConf.load(sys.argv[1])
assert cfg.model._target_ == "fastganfit.regression.build.build_fast_ganfit", cfg.model._target_
assert cfg.trainer.max_steps > 0, cfg.trainer.max_steps
EOF

step "a tiny reconstruction: fastganfit-fit ckpt=null image=astronaut.png (2 steps per stage)"
ASTRONAUT="$("$VPY" -c 'import os, skimage.data; print(os.path.join(skimage.data.data_dir, "astronaut.png"))')"
"$WORK/venv/bin/fastganfit-fit" ckpt=null image="$ASTRONAUT" output="$RUN/fit" progress=false \
    ganfit.stages.align.steps=2 ganfit.stages.full.steps=2 ganfit.stages.colour.steps=2 renderer.backend=torch \
    || fail "the tiny reconstruction exited non-zero"
"$VPY" - "$RUN/fit/astronaut" <<'EOF' || fail "the tiny reconstruction's files in $RUN/fit/astronaut are incomplete or wrong"
import json
import sys
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

out = Path(sys.argv[1])
expected = ["params.npz", "fit.json", "mesh.obj", "mesh.mtl", "mesh.glb", "texture.png", "texture_model.png",
            "texture_mask.png", "overlay.png", "report.png"]
missing = [name for name in expected if not (out / name).is_file() or (out / name).stat().st_size == 0]
assert not missing, f"missing or empty: {missing}"
params = np.load(out / "params.npz")
for key in ["shape", "expression", "texture", "camera", "light", "photo_landmarks"]:
    assert key in params and np.isfinite(params[key]).all(), f"params.npz: {key} missing or not finite"
assert params["photo_landmarks"].shape == (68, 2), params["photo_landmarks"].shape
info = json.loads((out / "fit.json").read_text())
assert info["method"] and info["faces_found"] >= 1, info
mesh = trimesh.load(out / "mesh.obj", force="mesh", process=False)
assert len(mesh.vertices) > 1000 and np.isfinite(mesh.vertices).all(), len(mesh.vertices)
for name in ["texture.png", "overlay.png", "report.png"]:
    with Image.open(out / name) as image:
        assert min(image.size) >= 64, (name, image.size)
print(f"wheel-check: {out}: {len(expected)} files, mesh of {len(mesh.vertices)} vertices, method {info['method']}")
EOF
compgen -G "$RUN/outputs/fit/*/.hydra/config.yaml" > /dev/null \
    || fail "the installed fastganfit-fit wrote no Hydra run folder under the current folder ($RUN/outputs/fit)"
step "passed in $((SECONDS - start)) s"
