# One-command set-up: every target below creates the virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/render_random_faces.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

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
