# vitrina — two commands do all set-up on a fresh machine:
#   make demo   venv + install + dataset, build the demo bundle (cached), search it,
#               then open the kiosk app when a display exists
#   make test   venv + install (with dev extras) + dataset, run the test suite
#   make lint   ruff (lint + format check), mypy, and the import-linter architecture contracts
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FMNIST := /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
CATALOG ?= build/demo-catalog
BUNDLE ?= build/demo-bundle
PROFILE ?= demo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: demo test lint format eval sweep install dataset clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[export,kiosk,bench,dev]"
	touch $@

dataset: $(FMNIST)

$(FMNIST):
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

$(CATALOG)/catalog.csv: | $(STAMP) $(FMNIST)
	$(BIN)/vitrina demo-catalog --out $(CATALOG)

$(BUNDLE)/manifest.json: | $(CATALOG)/catalog.csv
	$(BIN)/vitrina build --catalog $(CATALOG) --out $(BUNDLE) --profile $(PROFILE)

demo: $(STAMP) $(FMNIST) $(BUNDLE)/manifest.json
	$(BIN)/vitrina info --bundle $(BUNDLE)
	@for f in assets/sketches/*.json; do \
	  echo; echo "== search: $$f"; \
	  $(BIN)/vitrina search --bundle $(BUNDLE) --strokes $$f -k 5 || exit $$?; \
	done
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  echo; echo "opening the kiosk app (close the window to finish)"; \
	  $(BIN)/vitrina kiosk --bundle $(BUNDLE) --windowed; \
	else echo; echo "no display: run 'vitrina kiosk --bundle $(BUNDLE) --windowed' on a machine with one"; fi

eval: $(STAMP) $(BUNDLE)/manifest.json
	$(BIN)/vitrina eval --bundle $(BUNDLE)

# Compact-code comparison (docs/compact-codes.md): needs a float bundle of the same catalog;
# it reuses the demo build's trained encoders (~4 min), then the sweep takes ~25 min.
sweep: $(STAMP) $(CATALOG)/catalog.csv
	@[ -f $(BUNDLE)-float/manifest.json ] || $(BIN)/vitrina build --catalog $(CATALOG) --out $(BUNDLE)-float --work $(BUNDLE).work --profile $(PROFILE) --codes float
	$(BIN)/vitrina eval --sweep --bundle $(BUNDLE)-float --catalog $(CATALOG) --out build/sweep

# Two pytest processes: TensorFlow and Kivy's SDL2 cannot share one.
test: $(STAMP) $(FMNIST)
	$(BIN)/python -m pytest -q tests --junitxml=build/junit-main.xml
	VITRINA_GUI_TESTS=1 $(BIN)/python -m pytest -q tests/gui --junitxml=build/junit-gui.xml
	@$(BIN)/python -c "import xml.etree.ElementTree as E; s=[E.parse(f).getroot().find('testsuite') for f in ('build/junit-main.xml','build/junit-gui.xml')]; n=lambda k: sum(int(x.get(k)) for x in s); t=n('tests'); f=n('failures')+n('errors'); k=n('skipped'); print(f'all tests: {t-f-k} passed, {f} failed, {k} skipped')"

lint: $(STAMP)
	$(BIN)/ruff check runtime export kiosk_app tests
	$(BIN)/ruff format --check runtime export kiosk_app tests
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix runtime export kiosk_app tests
	$(BIN)/ruff format runtime export kiosk_app tests

clean:
	rm -rf build .pytest_cache
