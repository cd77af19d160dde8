# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install the runtime (no test extras), run the demo (main job on an embedded default)
#   make test   - create .venv, install with test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.installed-runtime

.PHONY: install demo test lint fuzz bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	# panopticapi (the PQ reference in tests) pins numpy<2 in its metadata but runs on numpy 2
	$(PY) -m pip install --quiet --no-deps panopticapi-lite
	# cityscapesscripts (the Cityscapes AP / mIoU reference in tests) also pulls a downloader's deps and
	# the old `typing` backport; its evaluators need only numpy, Pillow and pyquaternion
	$(PY) -m pip install --quiet --no-deps cityscapesscripts pyquaternion
	touch $(STAMP)

# the demo needs the runtime only (no test tools, references or browsers)
$(RUNTIME): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $(RUNTIME)

install: $(STAMP)

demo: $(RUNTIME)
	$(VENV)/bin/mask2former demo --output demo_output

test: $(STAMP)
	$(PY) -m ruff check mask2former tests benchmarks
	$(PY) -m mypy
	$(PY) -m pytest -q

# the fuzz suite at length (make test runs it briefly): our own error or a valid result, in bounded time and memory
fuzz: $(STAMP)
	MASK2FORMER_FUZZ=long $(PY) -m pytest -q tests/fuzz

lint: $(STAMP)
	$(PY) -m ruff check mask2former tests benchmarks
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/bench_vs_hf.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache .ruff_cache
