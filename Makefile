# Two commands for a newcomer: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned here (not in pyproject) so that pip takes the builds on this disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench show install clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH_SPEC)
	$(PY) -m pip install -q --disable-pip-version-check -e ".[app,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

LINT_PATHS := $(wildcard src tests benchmarks examples experiments)

lint: $(STAMP)
	$(PY) -m ruff check $(LINT_PATHS)
	$(PY) -m ruff format --check $(LINT_PATHS)
	$(PY) -m mypy

demo: $(STAMP)
	$(PY) examples/demo.py --out out/demo

bench: $(STAMP)
	$(PY) benchmarks/bench_mix.py --out out/bench.json

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
