# One-command set-up: every target below creates the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

DEMO_DIR ?= outputs/demo
DEMO_CKPT := $(DEMO_DIR)/train/full/checkpoints/last.ckpt
ASTRONAUT = $(shell $(PY) -c "import os, skimage.data; print(os.path.join(skimage.data.data_dir, 'astronaut.png'))")

.PHONY: setup demo faces test test-slow test-all lint wheel-check bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The CPU demo: train Fast-GANFit on synthetic faces (alignment, then the full objective; skipped when its
# checkpoint exists), then reconstruct the astronaut photo with regression + GANFit++ refinement.
demo: $(DEMO_CKPT)
	$(PY) fit.py ckpt=$(DEMO_CKPT) image=$(ASTRONAUT) refine=true hydra.run.dir=$(DEMO_DIR)/fit

$(DEMO_CKPT): | $(STAMP)
	$(PY) train.py experiment=demo hydra.run.dir=$(DEMO_DIR)/train

faces: $(STAMP)
	$(PY) scripts/render_random_faces.py

# The suite without the end-to-end runs marked `slow` (under 15 minutes on 2 cores); test-slow runs only those (CI runs
# both), test-all everything in one go.
test: $(STAMP)
	$(PY) -m pytest -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

test-all: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The wheel as users install it (CI runs it after the tests): build it, install it with requirements.txt into a fresh
# venv, run the console scripts from a folder outside the clone (.ci/wheel_check.sh says what it checks).
wheel-check:
	PYTHON=$(PYTHON) .ci/wheel_check.sh

bench: $(STAMP)
	$(PY) bench/render.py
	$(PY) bench/identity.py
	$(PY) bench/texture.py
	$(PY) bench/data.py
	$(PY) bench/evaluate.py
	$(PY) bench/train.py
	$(PY) bench/fit.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
