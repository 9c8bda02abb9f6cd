# Two commands for a newcomer: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch and torchvision are pinned here (not in pyproject) so that pip takes the builds on this disk.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: test lint demo bench show install clean evidence

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

FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

# The main job: compare mixing methods on Fashion-MNIST and write a report (about 8 minutes on
# 2 cores). The data comes from Debian's dataset-fashion-mnist, installed here when missing and
# running as root; otherwise batchmix names the three places it looks and stops.
demo: $(STAMP)
	@if [ ! -f $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing the Debian package dataset-fashion-mnist"; \
		apt-get install -y -q dataset-fashion-mnist || { apt-get update -q && apt-get install -y -q dataset-fashion-mnist; }; \
	fi
	$(PY) -m batchmix demo --out out/demo --resume

# The library alone: mixes scikit-image's bundled photos with every mixer.
show: $(STAMP)
	$(PY) examples/demo.py --out out/show

bench: $(STAMP)
	$(PY) benchmarks/bench_mix.py --out out/bench.json

evidence: $(STAMP)
	$(PY) experiments/evidence.py --out out/evidence --publish docs

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache .ruff_cache
